'use strict';
/**
 * CloudWatch alarms per cluster, generated from the `clusters` parameter (comma-separated
 * cluster names) and referenced from serverless.yml `resources`, so they are part of the
 * packaged template (cfn-lint checks them). Every alarm and its recovery go to the alert
 * topic; the notifier turns them into Slack messages. Dimensions match the EMF metrics the
 * functions publish exactly (Powertools adds `service`).
 *
 *   no leader          EtcdHasLeader < 1 for 1 minute; missing data = breaching (a silent
 *                      probe, or a cluster no probe can reach, is itself an emergency)
 *   quorum margin 0    EtcdQuorumMargin <= 0 for `marginAlarmMinutes` (a replacement passes
 *                      through margin 0 briefly; staying there means one more failure stops it)
 *   Lease stalled      LeaseStaleSeconds > `leaseStaleSec` (2 × the 15 s default lease) for
 *                      2 minutes, per component
 *   backup stale       BackupAgeSeconds > `backupStaleAfterSec` in an hour; missing = breaching
 *   certificate        EtcdCertDaysLeft < 30 at any probe within an hour (an hour, not a minute:
 *                      a probe that could not read the expiring one, e.g. its member down for a
 *                      minute, must not announce a recovery); missing = not breaching
 *   flow failures      any FlowFailures of probe, backup, lifecycle or reconcile in 5 minutes
 *   drift persists     ReconcileDrift ≥ 1 in 3 reconciler runs in a row (15 min at the default
 *                      schedule): something the reconciler cannot fix, or fixes and finds again
 */
const { servedClusters } = require('./clusters');

/** Days before expiry a served certificate raises the alarm (lib/domain/health.ts CERT_WARN_DAYS). */
const CERT_WARN_DAYS = 30;

function pascal(s) {
  return s.split('-').map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join('');
}

module.exports = async ({ resolveVariable }) => {
  const param = async (name) => String(await resolveVariable(`param:${name}`));
  const clusters = servedClusters(await param('clusters'));
  const service = String(await resolveVariable('self:service'));
  const stage = String(await resolveVariable('sls:stage'));
  const leaseStaleSec = Number(await param('leaseStaleSec'));
  const marginMinutes = Number(await param('marginAlarmMinutes'));
  const backupStaleAfterSec = Number(await param('backupStaleAfterSec'));
  const leases = (await param('probeLeases')).split(',');
  const actions = { AlarmActions: [{ Ref: 'AlertTopic' }], OKActions: [{ Ref: 'AlertTopic' }] };
  const dims = (svc, cluster, extra = []) => [{ Name: 'Cluster', Value: cluster }, { Name: 'service', Value: svc }, ...extra];
  const Resources = {};
  for (const cluster of clusters) {
    const id = pascal(cluster);
    const name = (kind) => `${service}-${stage}-${cluster}-${kind}`;
    Resources[`${id}NoLeaderAlarm`] = {
      Type: 'AWS::CloudWatch::Alarm',
      Properties: {
        AlarmName: name('no-leader'),
        AlarmDescription: `etcd of ${cluster} has no leader (or no probe reaches it): the Kubernetes API cannot write. Next: quorum-keeper status --cluster ${cluster}; bring failed masters back, or restore from the latest backup.`,
        Namespace: 'QuorumKeeper', MetricName: 'EtcdHasLeader', Dimensions: dims('probe', cluster), Statistic: 'Minimum',
        Period: 60, EvaluationPeriods: 1, DatapointsToAlarm: 1, Threshold: 1, ComparisonOperator: 'LessThanThreshold', TreatMissingData: 'breaching', ...actions,
      },
    };
    Resources[`${id}QuorumMarginAlarm`] = {
      Type: 'AWS::CloudWatch::Alarm',
      Properties: {
        AlarmName: name('quorum-margin'),
        AlarmDescription: `etcd of ${cluster} has no failure tolerance left: one more failed master stops the cluster. Next: quorum-keeper status --cluster ${cluster} to find the unhealthy member; check its ASG and the lifecycle alerts.`,
        Namespace: 'QuorumKeeper', MetricName: 'EtcdQuorumMargin', Dimensions: dims('probe', cluster), Statistic: 'Minimum',
        Period: 60, EvaluationPeriods: marginMinutes, DatapointsToAlarm: marginMinutes, Threshold: 0, ComparisonOperator: 'LessThanOrEqualToThreshold', TreatMissingData: 'notBreaching', ...actions,
      },
    };
    for (const component of leases) {
      Resources[`${id}${pascal(component.replace(/\./g, '-'))}LeaseAlarm`] = {
        Type: 'AWS::CloudWatch::Alarm',
        Properties: {
          AlarmName: name(`lease-${component}`),
          AlarmDescription: `${component} leader election stalled on ${cluster}: its Lease has not been renewed for over ${leaseStaleSec} s. Next: check the ${component} pods on the masters (crash loop, API server unreachable); the probe log names the last holder.`,
          Namespace: 'QuorumKeeper', MetricName: 'LeaseStaleSeconds', Dimensions: dims('probe', cluster, [{ Name: 'Component', Value: component }]), Statistic: 'Maximum',
          Period: 60, EvaluationPeriods: 2, DatapointsToAlarm: 2, Threshold: leaseStaleSec, ComparisonOperator: 'GreaterThanThreshold', TreatMissingData: 'notBreaching', ...actions,
        },
      };
    }
    Resources[`${id}BackupStaleAlarm`] = {
      Type: 'AWS::CloudWatch::Alarm',
      Properties: {
        AlarmName: name('backup-stale'),
        AlarmDescription: `The newest good etcd backup of ${cluster} is older than ${Math.round(backupStaleAfterSec / 60)} min (or none is reported). Next: look for backup failure alerts; run quorum-keeper backup --cluster ${cluster} once the cause is fixed.`,
        Namespace: 'QuorumKeeper', MetricName: 'BackupAgeSeconds', Dimensions: dims('backup', cluster), Statistic: 'Maximum',
        Period: 3600, EvaluationPeriods: 1, DatapointsToAlarm: 1, Threshold: backupStaleAfterSec, ComparisonOperator: 'GreaterThanThreshold', TreatMissingData: 'breaching', ...actions,
      },
    };
    Resources[`${id}CertExpiryAlarm`] = {
      Type: 'AWS::CloudWatch::Alarm',
      Properties: {
        AlarmName: name('cert-expiry'),
        AlarmDescription: `An etcd member of ${cluster} serves a certificate (client or peer) that expires within ${CERT_WARN_DAYS} days: once expired, its clients or peers refuse it. Next: quorum-keeper status --cluster ${cluster} names the member, the certificate and the date; renew it on that master (kubeadm certs renew etcd-server etcd-peer, or your own PKI).`,
        Namespace: 'QuorumKeeper', MetricName: 'EtcdCertDaysLeft', Dimensions: dims('probe', cluster), Statistic: 'Minimum',
        Period: 3600, EvaluationPeriods: 1, DatapointsToAlarm: 1, Threshold: CERT_WARN_DAYS, ComparisonOperator: 'LessThanThreshold', TreatMissingData: 'notBreaching', ...actions,
      },
    };
    Resources[`${id}DriftAlarm`] = {
      Type: 'AWS::CloudWatch::Alarm',
      Properties: {
        AlarmName: name('drift'),
        AlarmDescription: `The reconciler keeps finding ${cluster} out of shape (3 runs in a row). Next: quorum-keeper plan --cluster ${cluster} shows what it finds; the reconciler log line says what it did and why it could not finish.`,
        Namespace: 'QuorumKeeper', MetricName: 'ReconcileDrift', Dimensions: dims('reconcile', cluster), Statistic: 'Minimum',
        Period: 300, EvaluationPeriods: 3, DatapointsToAlarm: 3, Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold', TreatMissingData: 'notBreaching', ...actions,
      },
    };
    const flows = ['probe', 'backup', 'lifecycle', 'reconcile'];
    Resources[`${id}FlowFailuresAlarm`] = {
      Type: 'AWS::CloudWatch::Alarm',
      Properties: {
        AlarmName: name('flow-failures'),
        AlarmDescription: `A Quorum Keeper flow failed on ${cluster} (probe, backup, lifecycle or reconcile). Next: read the alert the flow sent, and the function's log.`,
        Metrics: [
          { Id: 'failures', Label: 'FlowFailures', Expression: flows.map((f) => `FILL(${f}, 0)`).join(' + '), ReturnData: true },
          ...flows.map((f) => ({
            Id: f, ReturnData: false,
            MetricStat: { Metric: { Namespace: 'QuorumKeeper', MetricName: 'FlowFailures', Dimensions: dims(f, cluster) }, Period: 300, Stat: 'Sum' },
          })),
        ],
        EvaluationPeriods: 1, DatapointsToAlarm: 1, Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold', TreatMissingData: 'notBreaching', ...actions,
      },
    };
  }
  return { Resources };
};
