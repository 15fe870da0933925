import { loadConfig, loadFlowConfig } from '../../lib/config';

describe('configuration', () => {
  it('applies defaults', () => {
    expect(loadConfig({ AWS_REGION: 'eu-west-1' })).toEqual({ AWS_REGION: 'eu-west-1', QK_TAG_CLUSTER: 'quorum-keeper/cluster', QK_TAG_MEMBER: 'quorum-keeper/etcd-member' });
  });
  it('names every bad variable in one message', () => {
    expect(() => loadConfig({ AWS_REGION: 'moon', QK_AWS_ENDPOINT: 'ftp://x' })).toThrow(/AWS_REGION: must be an AWS region.*QK_AWS_ENDPOINT/);
  });
  it('requires the state table and alert topic for the flows', () => {
    expect(() => loadFlowConfig({ AWS_REGION: 'eu-west-1' })).toThrow(/QK_STATE_TABLE.*QK_ALERT_TOPIC_ARN/);
    const cfg = loadFlowConfig({ AWS_REGION: 'eu-west-1', QK_STATE_TABLE: 'qk-state', QK_ALERT_TOPIC_ARN: 'arn:aws:sns:eu-west-1:123456789012:qk-alerts', QK_POLL_MIN_DELAY_SEC: '1' });
    expect(cfg).toMatchObject({ QK_POLL_MIN_DELAY_SEC: 1, QK_POLL_MAX_DELAY_SEC: 15 });
  });
});
