import { loadBackupConfig, loadConfig, loadFlowConfig } from '../../lib/config';
import { backupSettings } from '../../lib/flows/backup';

describe('configuration', () => {
  it('applies defaults', () => {
    expect(loadConfig({ AWS_REGION: 'eu-west-1' })).toEqual({ AWS_REGION: 'eu-west-1', QK_TAG_CLUSTER: 'quorum-keeper/cluster', QK_TAG_MEMBER: 'quorum-keeper/etcd-member', QK_CLUSTERS: [] });
  });
  it('QK_CLUSTERS: the served cluster names (spaces around commas forgiven); anything else named', () => {
    expect(loadConfig({ AWS_REGION: 'eu-west-1', QK_CLUSTERS: 'prod, staging' }).QK_CLUSTERS).toEqual(['prod', 'staging']);
    expect(loadConfig({ AWS_REGION: 'eu-west-1', QK_CLUSTERS: '' }).QK_CLUSTERS).toEqual([]);
    expect(() => loadConfig({ AWS_REGION: 'eu-west-1', QK_CLUSTERS: 'prod,Staging;id' })).toThrow(/QK_CLUSTERS: must be comma-separated cluster names/);
  });
  it('names every bad variable in one message', () => {
    expect(() => loadConfig({ AWS_REGION: 'moon', QK_AWS_ENDPOINT: 'ftp://x' })).toThrow(/AWS_REGION: must be an AWS region.*QK_AWS_ENDPOINT/);
  });
  it('requires the state table and alert topic for the flows', () => {
    expect(() => loadFlowConfig({ AWS_REGION: 'eu-west-1' })).toThrow(/QK_STATE_TABLE.*QK_ALERT_TOPIC_ARN/);
    const cfg = loadFlowConfig({ AWS_REGION: 'eu-west-1', QK_STATE_TABLE: 'qk-state', QK_ALERT_TOPIC_ARN: 'arn:aws:sns:eu-west-1:123456789012:qk-alerts', QK_POLL_MIN_DELAY_SEC: '1' });
    expect(cfg).toMatchObject({ QK_POLL_MIN_DELAY_SEC: 1, QK_POLL_MAX_DELAY_SEC: 15 });
  });
  it('backup settings: defaults, an empty KMS key means the bucket default, bad values named', () => {
    const env = { AWS_REGION: 'eu-west-1', QK_STATE_TABLE: 'qk-state', QK_ALERT_TOPIC_ARN: 'arn:aws:sns:eu-west-1:123456789012:qk-alerts', QK_BACKUP_BUCKET: 'qk-backups-prod' };
    expect(backupSettings(loadBackupConfig({ ...env, QK_BACKUP_KMS_KEY_ID: '' }))).toEqual({
      store: { bucket: 'qk-backups-prod', prefix: 'etcd-backups' }, workDir: '/var/lib/quorum-keeper/snapshots', compressor: 'auto',
      retention: { keepAllHours: 24, dailyDays: 7, weeklyWeeks: 8 }, staleAfterSec: 3600,
    });
    expect(backupSettings(loadBackupConfig({ ...env, QK_BACKUP_KMS_KEY_ID: 'alias/qk-backups', QK_RETENTION_DAILY_DAYS: '14' })))
      .toMatchObject({ store: { kmsKeyId: 'alias/qk-backups' }, retention: { dailyDays: 14 } });
    expect(() => loadBackupConfig({ ...env, QK_BACKUP_BUCKET: 'Bad_Bucket', QK_BACKUP_PREFIX: '/x/', QK_BACKUP_WORK_DIR: '/var/../etc', QK_BACKUP_COMPRESSOR: 'xz' }))
      .toThrow(/QK_BACKUP_BUCKET.*QK_BACKUP_PREFIX.*QK_BACKUP_COMPRESSOR.*QK_BACKUP_WORK_DIR/);
  });
});
