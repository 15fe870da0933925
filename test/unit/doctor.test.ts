/**
 * `quorum-keeper doctor`'s judgement (lib/domain/doctor.ts): a good cluster's facts pass every
 * check; each row breaks exactly one thing and expects that check to fail (or warn) with a fix
 * naming the real resource — and no other check to fail or warn beyond the ones that row names.
 */
import { DRAIN_MARGIN_SEC as LB_DRAIN_MARGIN_SEC } from '../../lib/aws/lb';
import {
  type AsgFacts, type Check, CHECK_IDS, type CheckId, type DoctorFacts, DRAIN_MARGIN_SEC, type HostStatusFacts, type InspectFacts, judge, summarise,
} from '../../lib/domain/doctor';
import { main } from '../../cli/main';
import { renderDoctor } from '../../cli/render/doctor';

const NOW = Date.parse('2026-12-07T12:00:00Z');
const DAY = 86_400_000;
const SLOTS = ['a', 'b', 'c'] as const;
type S = (typeof SLOTS)[number];
const AZ = (s: S) => `us-east-1${s}`;
const ASG = (s: S) => `prod-master-us-east-1${s}`;
const INSTANCE = (s: S) => `i-0${s.repeat(16)}`;
const VOLUME = (s: S) => `vol-0${s.repeat(16)}`;
const ID = (s: S) => `${s.repeat(4)}1111${s.repeat(4)}2222`;
const IP = (s: S) => `10.0.${SLOTS.indexOf(s) + 1}.10`;
const TG_ARN = 'arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/prod-apiserver/0123456789abcdef';
const KEY_ARN = 'arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555';

function goodFacts(): DoctorFacts {
  const asg = (s: S): AsgFacts => ({
    name: ASG(s), memberTag: `etcd-${s}`, clusterTagPropagated: true, memberTagPropagated: true, min: 1, max: 1, desired: 1,
    availabilityZones: [AZ(s)], subnets: [{ subnetId: `subnet-${s}1`, az: AZ(s) }], healthCheckType: 'EC2', healthCheckGracePeriodSec: 300,
    targetGroupArns: [], loadBalancerNames: [], terminateHookAbandon: 'retain',
    hooks: [
      { name: 'quorum-keeper-launch', transition: 'autoscaling:EC2_INSTANCE_LAUNCHING', heartbeatTimeoutSec: 1800, defaultResult: 'ABANDON' },
      { name: 'quorum-keeper-terminate', transition: 'autoscaling:EC2_INSTANCE_TERMINATING', heartbeatTimeoutSec: 1800, defaultResult: 'CONTINUE' },
    ],
    instances: [{ instanceId: INSTANCE(s), lifecycleState: 'InService' }],
  });
  const status = (s: S): HostStatusFacts => ({
    ok: true, peerUrl: `https://${IP(s)}:2380`, clientUrl: `https://${IP(s)}:2379`, running: true, healthy: true,
    etcdVersion: '3.5.16', serverVersion: '3.5.16', clusterVersion: '3.5.0', guard: 'full',
  });
  const inspect = (s: S): InspectFacts => ({
    ok: true, volumeId: VOLUME(s), device: '/dev/nvme1n1', mountedDevice: '/dev/nvme1n1', onVolume: true, mountPoint: '/var/lib/etcd', dataDir: '/var/lib/etcd/data', hasData: true,
    marker: { cluster: 'prod', member: `etcd-${s}`, volume: VOLUME(s), memberId: ID(s) },
  });
  const fn = (n: string) => ({ logicalId: `${n}LambdaFunction`, physicalId: `quorum-keeper-prod-${n.toLowerCase()}`, resourceStatus: 'CREATE_COMPLETE', found: true });
  const rule = (n: string) => ({ logicalId: `${n}Rule`, physicalId: `quorum-keeper-prod-${n}Rule-1X2Y3Z`, resourceStatus: 'UPDATE_COMPLETE', state: 'ENABLED' });
  return {
    cluster: 'prod', tags: { cluster: 'quorum-keeper/cluster', member: 'quorum-keeper/etcd-member' }, now: NOW,
    asgs: SLOTS.map(asg),
    volumes: SLOTS.map((s) => ({ volumeId: VOLUME(s), az: AZ(s), state: 'in-use', memberTag: `etcd-${s}`, attachedTo: INSTANCE(s), device: '/dev/xvdf' })),
    targetGroups: [{ arn: TG_ARN, name: 'prod-apiserver', port: 6443, protocol: 'TCP', deregistrationDelaySec: 30, healthCheckIntervalSec: 10, healthyThreshold: 3 }],
    instances: Object.fromEntries(SLOTS.map((s) => [INSTANCE(s), {
      instanceId: INSTANCE(s), state: 'running', agent: 'Online', tags: { 'quorum-keeper/cluster': 'prod', 'quorum-keeper/etcd-member': `etcd-${s}` },
    }])),
    hosts: Object.fromEntries(SLOTS.map((s) => [`etcd-${s}`, { instanceId: INSTANCE(s), status: status(s), inspect: inspect(s) }])),
    etcd: {
      via: 'etcd-a', quorum: true, tried: [],
      members: SLOTS.map((s) => ({ id: ID(s), name: `etcd-${s}`, peerUrls: [`https://${IP(s)}:2380`], clientUrls: [`https://${IP(s)}:2379`], isLearner: false })),
      statuses: SLOTS.map((s) => ({ memberId: ID(s), endpoint: `https://${IP(s)}:2379`, version: '3.5.16', isLeader: s === 'c' })),
      unreachable: [], clusterVersion: '3.5.0',
      certs: SLOTS.flatMap((s) => (['client', 'peer'] as const).map((kind) => ({
        member: `etcd-${s}`, kind, url: `https://${IP(s)}:${kind === 'client' ? 2379 : 2380}`, notAfter: new Date(NOW + 365 * DAY).toISOString(),
      }))),
      errors: [],
    },
    recordedIds: Object.fromEntries(SLOTS.map((s) => [`etcd-${s}`, ID(s)])),
    backup: { bucket: 'qk-backups', reachable: { ok: true }, encryption: { algorithm: 'aws:kms', keyId: KEY_ARN }, kmsKeyId: null, keys: [{ keyId: KEY_ARN, arn: KEY_ARN, state: 'Enabled' }] },
    stack: {
      name: 'quorum-keeper-prod',
      functions: ['Lifecycle', 'Backup', 'Reconcile', 'Probe', 'Notifier'].map(fn),
      rules: ['LifecycleEventBridge', 'BackupSchedule', 'ReconcileSchedule', 'ProbeSchedule'].map(rule),
    },
  };
}

const asgOf = (f: DoctorFacts, s: S) => f.asgs.find((g) => g.name === ASG(s))!;
const hostOf = (f: DoctorFacts, s: S) => f.hosts[`etcd-${s}`]!;
const okStatus = (f: DoctorFacts, s: S) => hostOf(f, s).status as Extract<HostStatusFacts, { ok: true }>;
const okInspect = (f: DoctorFacts, s: S) => hostOf(f, s).inspect as Extract<InspectFacts, { ok: true }>;
const key = (c: Pick<Check, 'id' | 'member'>) => `${c.id}${c.member ? `@${c.member}` : ''}`;
const bad = (checks: Check[]) => checks.filter((c) => c.status === 'fail' || c.status === 'warn').map(key).sort();

interface Row {
  id: CheckId;
  /** The slot the check is about (absent: cluster-wide). */
  member?: string;
  status: 'fail' | 'warn';
  why: string;
  break: (f: DoctorFacts) => void;
  /** The fix must name the resource: what it must match. */
  fix: RegExp;
  detail?: RegExp;
  /** Other checks this break rightly fails or warns too (`id@member`). */
  also?: string[];
}

const ROWS: Row[] = [
  {
    id: 'asg-per-member', status: 'fail', why: 'an ASG tagged for the cluster without a member tag',
    break: (f) => f.asgs.push({ ...asgOf(f, 'a'), name: 'prod-bastion', memberTag: undefined, instances: [] }),
    fix: /aws autoscaling create-or-update-tags --tags ResourceId=prod-bastion,ResourceType=auto-scaling-group,Key=quorum-keeper\/etcd-member,/, detail: /prod-bastion .*has no quorum-keeper\/etcd-member tag/,
  },
  {
    id: 'asg-per-member', status: 'fail', why: 'two ASGs with the same member tag',
    break: (f) => f.asgs.push({ ...asgOf(f, 'a'), name: 'prod-master-us-east-1a-old', instances: [] }),
    fix: /ResourceId=prod-master-us-east-1a-old,/, detail: /prod-master-us-east-1a and prod-master-us-east-1a-old are both tagged quorum-keeper\/etcd-member=etcd-a/,
    // etcd-a is then no slot: its volume and member belong to none.
    also: ['member-mapping', 'volume-tags'],
  },
  {
    id: 'asg-capacity', member: 'etcd-b', status: 'fail', why: 'max 2',
    break: (f) => { asgOf(f, 'b').max = 2; },
    fix: /^aws autoscaling update-auto-scaling-group --auto-scaling-group-name prod-master-us-east-1b --min-size 1 --max-size 1 --desired-capacity 1$/,
  },
  {
    id: 'launch-hook', member: 'etcd-a', status: 'fail', why: 'no launch hook',
    break: (f) => { asgOf(f, 'a').hooks.shift(); },
    fix: /^aws autoscaling put-lifecycle-hook --auto-scaling-group-name prod-master-us-east-1a --lifecycle-hook-name quorum-keeper-launch --lifecycle-transition autoscaling:EC2_INSTANCE_LAUNCHING --heartbeat-timeout 1800 --default-result ABANDON$/,
  },
  {
    id: 'launch-hook', member: 'etcd-a', status: 'fail', why: 'launch hook defaults to CONTINUE',
    break: (f) => { asgOf(f, 'a').hooks[0]!.defaultResult = 'CONTINUE'; },
    fix: /--lifecycle-hook-name quorum-keeper-launch .*--default-result ABANDON$/, detail: /DefaultResult CONTINUE, not ABANDON/,
  },
  {
    id: 'launch-hook', member: 'etcd-c', status: 'warn', why: 'launch hook heartbeat 900 s',
    break: (f) => { asgOf(f, 'c').hooks[0]!.heartbeatTimeoutSec = 900; },
    fix: /--auto-scaling-group-name prod-master-us-east-1c .*--heartbeat-timeout 1800/, detail: /HeartbeatTimeout 900 s/,
  },
  {
    id: 'terminate-hook', member: 'etcd-b', status: 'fail', why: 'no terminate hook',
    break: (f) => { asgOf(f, 'b').hooks.pop(); },
    fix: /^aws autoscaling put-lifecycle-hook --auto-scaling-group-name prod-master-us-east-1b --lifecycle-hook-name quorum-keeper-terminate --lifecycle-transition autoscaling:EC2_INSTANCE_TERMINATING --heartbeat-timeout 1800 --default-result CONTINUE$/,
  },
  {
    id: 'terminate-hook', member: 'etcd-b', status: 'fail', why: 'terminate hook heartbeat 300 s: shorter than two reconciler runs',
    break: (f) => { asgOf(f, 'b').hooks[1]!.heartbeatTimeoutSec = 300; },
    fix: /prod-master-us-east-1b --lifecycle-hook-name quorum-keeper-terminate .*--heartbeat-timeout 1800/, detail: /HeartbeatTimeout 300 s — the reconciler heartbeats held hooks every 300 s/,
  },
  {
    id: 'terminate-hook', member: 'etcd-b', status: 'warn', why: 'terminate hook defaults to ABANDON',
    break: (f) => { asgOf(f, 'b').hooks[1]!.defaultResult = 'ABANDON'; },
    fix: /--default-result CONTINUE$/, detail: /DefaultResult ABANDON, not CONTINUE/,
  },
  {
    id: 'asg-health-check', member: 'etcd-a', status: 'fail', why: 'ELB health checks',
    break: (f) => { asgOf(f, 'a').healthCheckType = 'ELB'; },
    fix: /^aws autoscaling update-auto-scaling-group --auto-scaling-group-name prod-master-us-east-1a --health-check-type EC2$/,
  },
  {
    id: 'asg-load-balancer', member: 'etcd-c', status: 'fail', why: 'the target group attached to the ASG',
    break: (f) => { asgOf(f, 'c').targetGroupArns = [TG_ARN]; },
    fix: new RegExp(`^aws autoscaling detach-load-balancer-target-groups --auto-scaling-group-name prod-master-us-east-1c --target-group-arns ${TG_ARN}$`),
  },
  {
    id: 'asg-retention', member: 'etcd-a', status: 'warn', why: 'no retention policy',
    break: (f) => { asgOf(f, 'a').terminateHookAbandon = null; },
    fix: /--auto-scaling-group-name prod-master-us-east-1a --instance-lifecycle-policy 'RetentionTriggers=\{TerminateHookAbandon=retain\}'/,
  },
  {
    id: 'asg-tags', member: 'etcd-a', status: 'fail', why: 'cluster tag not propagated at launch',
    break: (f) => { asgOf(f, 'a').clusterTagPropagated = false; },
    fix: /--tags ResourceId=prod-master-us-east-1a,ResourceType=auto-scaling-group,Key=quorum-keeper\/cluster,Value=prod,PropagateAtLaunch=true$/,
  },
  {
    id: 'asg-tags', member: 'etcd-b', status: 'warn', why: 'member tag not propagated at launch',
    break: (f) => { asgOf(f, 'b').memberTagPropagated = false; },
    fix: /ResourceId=prod-master-us-east-1b,.*Key=quorum-keeper\/etcd-member,Value=etcd-b,PropagateAtLaunch=true$/,
  },
  {
    id: 'master-instance', member: 'etcd-a', status: 'fail', why: 'the master waits in Pending:Wait',
    break: (f) => { asgOf(f, 'a').instances[0]!.lifecycleState = 'Pending:Wait'; delete f.hosts['etcd-a']; },
    fix: /describe-scaling-activities --auto-scaling-group-name prod-master-us-east-1a/, detail: new RegExp(`${INSTANCE('a')} is Pending:Wait`),
  },
  {
    id: 'instance-tag', member: 'etcd-b', status: 'fail', why: 'the master lacks the cluster tag',
    break: (f) => { delete f.instances[INSTANCE('b')]!.tags['quorum-keeper/cluster']; },
    fix: new RegExp(`^aws ec2 create-tags --resources ${INSTANCE('b')} --tags Key=quorum-keeper/cluster,Value=prod$`),
  },
  {
    id: 'volume-count', member: 'etcd-b', status: 'fail', why: 'the volume lost its member tag',
    break: (f) => { f.volumes[1]!.memberTag = undefined; },
    fix: new RegExp(`^aws ec2 create-tags --resources ${VOLUME('b')} --tags Key=quorum-keeper/cluster,Value=prod Key=quorum-keeper/etcd-member,Value=etcd-b$`),
    also: ['volume-tags'],
  },
  {
    id: 'volume-count', member: 'etcd-b', status: 'fail', why: 'two volumes for one member',
    break: (f) => f.volumes.push({ volumeId: 'vol-0123456789abcdef0', az: AZ('b'), state: 'available', memberTag: 'etcd-b', attachedTo: null, device: null }),
    fix: new RegExp(`${VOLUME('b')} is on the master; .*aws ec2 delete-tags --resources vol-0123456789abcdef0 --tags Key=quorum-keeper/etcd-member$`),
  },
  {
    id: 'volume-az', member: 'etcd-a', status: 'fail', why: 'the ASG also launches in another AZ',
    break: (f) => { asgOf(f, 'a').subnets.push({ subnetId: 'subnet-b9', az: AZ('b') }); },
    fix: /^aws autoscaling update-auto-scaling-group --auto-scaling-group-name prod-master-us-east-1a --vpc-zone-identifier subnet-a1$/,
    detail: new RegExp(`launches into us-east-1a, us-east-1b but ${VOLUME('a')} is in us-east-1a`),
  },
  {
    id: 'volume-az', member: 'etcd-c', status: 'fail', why: 'the volume is in another AZ than its ASG',
    break: (f) => { f.volumes[2]!.az = AZ('a'); },
    fix: /--auto-scaling-group-name prod-master-us-east-1c --vpc-zone-identifier <a subnet in us-east-1a>$/,
  },
  {
    id: 'volume-tags', status: 'warn', why: 'a cluster volume for a member no ASG has',
    break: (f) => f.volumes.push({ volumeId: 'vol-0fedcba9876543210', az: AZ('a'), state: 'available', memberTag: 'etcd-z', attachedTo: null, device: null }),
    fix: /aws ec2 delete-tags --resources vol-0fedcba9876543210 --tags Key=quorum-keeper\/cluster$/,
  },
  {
    id: 'target-group', status: 'fail', why: 'no target group tagged',
    break: (f) => { f.targetGroups = []; },
    fix: /^aws elbv2 add-tags --resource-arns .* --tags Key=quorum-keeper\/cluster,Value=prod$/,
  },
  {
    id: 'tg-port', status: 'fail', why: 'the target group on 443',
    break: (f) => { f.targetGroups[0]!.port = 443; },
    fix: new RegExp(`create-target-group --name prod-apiserver-6443 --protocol TCP --port 6443 .*remove-tags --resource-arns ${TG_ARN} --tag-keys quorum-keeper/cluster$`),
  },
  {
    id: 'tg-deregistration-delay', status: 'warn', why: "AWS's default 300 s",
    break: (f) => { f.targetGroups[0]!.deregistrationDelaySec = 300; },
    fix: new RegExp(`^aws elbv2 modify-target-group-attributes --target-group-arn ${TG_ARN} --attributes Key=deregistration_delay.timeout_seconds,Value=60$`),
  },
  {
    id: 'tg-deregistration-delay', status: 'fail', why: 'a delay the terminate hook cannot outlast',
    break: (f) => { f.targetGroups[0]!.deregistrationDelaySec = 1800; },
    fix: /Value=60$/, detail: /drains 1800 s \(\+60 s\), not under the terminate hook's 1800 s/,
  },
  {
    id: 'tg-health-checks', status: 'warn', why: "NLB's defaults, 30 s × 5",
    break: (f) => { f.targetGroups[0]!.healthCheckIntervalSec = 30; f.targetGroups[0]!.healthyThreshold = 5; },
    fix: new RegExp(`^aws elbv2 modify-target-group --target-group-arn ${TG_ARN} --health-check-interval-seconds 10 --healthy-threshold-count 3$`),
  },
  {
    id: 'ssm-agent', member: 'etcd-c', status: 'fail', why: 'the agent lost its connection (the master is not asked)',
    break: (f) => { f.instances[INSTANCE('c')]!.agent = 'ConnectionLost'; delete f.hosts['etcd-c']; },
    fix: new RegExp(`on ${INSTANCE('c')}: sudo systemctl restart amazon-ssm-agent.*Values=${INSTANCE('c')}$`), detail: /is ConnectionLost/,
  },
  {
    id: 'host-env', member: 'etcd-a', status: 'fail', why: 'host.env has a bad value (both host scripts refuse it)',
    break: (f) => {
      const error = 'etcd-member.sh status exit 2: etcd-member: host.env: bad QK_ETCD_SCHEME';
      hostOf(f, 'a').status = { ok: false, error };
      hostOf(f, 'a').inspect = { ok: false, error: error.replace('etcd-member.sh status', 'etcd-mount.sh --inspect') };
    },
    fix: new RegExp(`^fix /etc/quorum-keeper/host.env on ${INSTANCE('a')} \\(keys and values: docs/host-scripts.md#environment-and-hostenv\\)`), detail: /bad QK_ETCD_SCHEME/,
  },
  {
    id: 'host-env', member: 'etcd-b', status: 'fail', why: 'no host.env: the defaults advertise another URL than etcd knows',
    break: (f) => Object.assign(okStatus(f, 'b'), { peerUrl: 'http://127.0.0.1:2380', clientUrl: 'http://127.0.0.1:2379', running: false, healthy: false }),
    fix: new RegExp(`^write /etc/quorum-keeper/host.env on ${INSTANCE('b')} with this master's QK_HOST_IP`),
    detail: /advertises http:\/\/127\.0\.0\.1:2380 \(from host\.env\) but etcd lists etcd-b's member at https:\/\/10\.0\.2\.10:2380/,
  },
  {
    id: 'etcd-reachable', status: 'fail', why: 'no master\'s etcd answers',
    break: (f) => { f.etcd = { ...f.etcd, via: null, quorum: false, members: [], statuses: [], certs: null, tried: ['etcd-a: survey failed (Failed): etcd not running'] }; },
    fix: /quorum-keeper status --cluster prod .*docs\/operator-guide\.md §6/, detail: /etcd-a: survey failed/,
  },
  {
    id: 'etcd-reachable', status: 'fail', why: 'answered without quorum',
    break: (f) => { f.etcd.quorum = false; },
    fix: /quorum-keeper status --cluster prod/, detail: /without quorum/,
  },
  {
    id: 'etcd-reachable', member: 'etcd-c', status: 'fail', why: 'one member does not answer',
    break: (f) => {
      f.etcd.statuses = f.etcd.statuses.filter((s) => s.memberId !== ID('c'));
      f.etcd.unreachable = [{ endpoint: `https://${IP('c')}:2379`, error: 'context deadline exceeded' }];
    },
    fix: new RegExp(`on ${INSTANCE('c')}: systemctl status etcd.*terminate-instance-in-auto-scaling-group --instance-id ${INSTANCE('c')} --no-should-decrement-desired-capacity$`),
    detail: /did not answer at https:\/\/10\.0\.3\.10:2379: context deadline exceeded/,
  },
  {
    id: 'etcd-reachable', member: 'etcd-b', status: 'fail', why: "the master's own TLS files do not reach its member",
    break: (f) => { okStatus(f, 'b').healthy = false; },
    fix: new RegExp(`QK_ETCD_CACERT .* in /etc/quorum-keeper/host.env on ${INSTANCE('b')}`),
  },
  {
    id: 'etcd-tls', status: 'warn', why: 'a member on plain http',
    break: (f) => { f.etcd.members[0]!.clientUrls = [`http://${IP('a')}:2379`]; },
    fix: /QK_ETCD_SCHEME=https .*docs\/host-scripts\.md#mutual-tls/, detail: /plain http: etcd-a http:\/\/10\.0\.1\.10:2379/,
  },
  {
    id: 'etcd-tls', status: 'fail', why: 'an expired certificate',
    break: (f) => { f.etcd.certs![3]!.notAfter = new Date(NOW - 2 * DAY).toISOString(); },
    fix: /renew etcd-b's peer certificate: kubeadm certs renew etcd-peer .*QK_ETCD_PEER_CERT/, detail: /etcd-b's peer certificate .* expired/,
  },
  {
    id: 'etcd-tls', status: 'warn', why: 'a certificate expiring in 10 days',
    break: (f) => { f.etcd.certs![4]!.notAfter = new Date(NOW + 10.5 * DAY).toISOString(); },
    fix: /renew etcd-c's client certificate: kubeadm certs renew etcd-server .*QK_ETCD_CERT/, detail: /expires in 10 d/,
  },
  {
    id: 'etcd-tls', status: 'warn', why: 'no certificate could be read (no openssl)',
    break: (f) => { f.etcd.certs = null; },
    fix: /install openssl on the masters/,
  },
  {
    id: 'etcd-version', member: 'etcd-a', status: 'fail', why: 'the AMI carries an older etcd than the cluster runs',
    break: (f) => { okStatus(f, 'a').etcdVersion = '3.4.23'; },
    fix: /update the launch template of prod-master-us-east-1a/, detail: /etcd 3\.4\.23, older than the cluster's version 3\.5/,
  },
  {
    id: 'etcd-version', member: 'etcd-b', status: 'warn', why: 'the binary does not answer etcd --version',
    break: (f) => { okStatus(f, 'b').etcdVersion = null; },
    fix: new RegExp(`install etcd on ${INSTANCE('b')}'s AMI`),
  },
  {
    id: 'etcd-version', member: 'etcd-c', status: 'warn', why: 'the member runs another etcd than the binary on disk',
    break: (f) => { f.etcd.statuses[2]!.version = '3.5.15'; },
    fix: new RegExp(`terminate-instance-in-auto-scaling-group --instance-id ${INSTANCE('c')}`), detail: /runs etcd 3\.5\.15 but .*binary is 3\.5\.16/,
  },
  {
    id: 'member-mapping', status: 'fail', why: 'an etcd member no slot claims',
    break: (f) => f.etcd.members.push({ id: 'dddd1111dddd2222', name: 'ip-10-0-4-10', peerUrls: ['https://10.0.4.10:2380'], clientUrls: ['https://10.0.4.10:2379'], isLearner: false }),
    fix: /etcdctl member remove dddd1111dddd2222$/, detail: /ip-10-0-4-10 \(dddd1111dddd2222, https:\/\/10\.0\.4\.10:2380\) is claimed by no master slot/,
  },
  {
    id: 'member-mapping', member: 'etcd-a', status: 'fail', why: 'the slot claims no member (it was removed)',
    break: (f) => { f.etcd.members.shift(); f.etcd.statuses.shift(); },
    fix: /quorum-keeper reconcile --cluster prod --state-table <StateTableName>/, detail: /no etcd member is etcd-a's: none recorded, none named etcd-a, none at https:\/\/10\.0\.1\.10:2380/,
  },
  {
    id: 'member-mapping', member: 'etcd-a', status: 'fail', why: "two candidates: the volume marker names etcd-b's member",
    break: (f) => { okInspect(f, 'a').marker!.memberId = ID('b'); },
    fix: /etcdctl member remove <id> — never while it answers$/,
    detail: new RegExp(`2 candidate members: etcd-a ${ID('a')} \\(by recorded ID, name, peer URL\\) vs etcd-b ${ID('b')} \\(by volume marker\\)`),
    // The marker disagrees with the table too.
    also: ['marker@etcd-a'],
  },
  {
    id: 'data-dir', member: 'etcd-b', status: 'fail', why: 'etcd data on the root disk: the volume is not mounted',
    break: (f) => Object.assign(okInspect(f, 'b'), { mountedDevice: null, onVolume: false, marker: null }),
    fix: new RegExp(`quorum-keeper reconcile --cluster prod .*terminate-instance-in-auto-scaling-group --instance-id ${INSTANCE('b')}`),
    detail: new RegExp(`/var/lib/etcd/data is not on ${VOLUME('b')} \\(/dev/nvme1n1\\): /var/lib/etcd is the root disk's own directory`),
  },
  {
    id: 'data-dir', member: 'etcd-c', status: 'fail', why: 'the volume is not attached here',
    break: (f) => Object.assign(okInspect(f, 'c'), { device: null, onVolume: false, marker: null }),
    fix: /quorum-keeper reconcile --cluster prod/, detail: new RegExp(`${VOLUME('c')} has no device on ${INSTANCE('c')}`),
  },
  {
    id: 'data-dir', member: 'etcd-a', status: 'warn', why: 'a blank volume',
    break: (f) => { okInspect(f, 'a').hasData = false; },
    fix: /quorum-keeper reconcile/, detail: /holds no etcd data/,
  },
  {
    id: 'marker', member: 'etcd-b', status: 'fail', why: 'the marker was removed',
    break: (f) => { okInspect(f, 'b').marker = null; },
    fix: new RegExp(`^quorum-keeper adopt --cluster prod --state-table <StateTableName> writes it \\(--dry-run first\\); by hand: on ${INSTANCE('b')}, as root .*: bash etcd-mount.sh --adopt --volume-id ${VOLUME('b')} --cluster prod --member etcd-b; then .*--record-member-id ${ID('b')} --volume-id ${VOLUME('b')}`),
  },
  {
    id: 'marker', member: 'etcd-a', status: 'warn', why: 'no member ID recorded in the marker',
    break: (f) => { okInspect(f, 'a').marker!.memberId = ''; },
    fix: new RegExp(`bash etcd-mount.sh --record-member-id ${ID('a')} --volume-id ${VOLUME('a')} --cluster prod --member etcd-a$`),
  },
  {
    id: 'marker', member: 'etcd-c', status: 'fail', why: 'the volume is a copy of another',
    break: (f) => { okInspect(f, 'c').marker!.volume = 'vol-0999999999999999f'; },
    fix: new RegExp(`aws ec2 delete-tags --resources ${VOLUME('c')} --tags Key=quorum-keeper/etcd-member\\) and attach vol-0999999999999999f`),
  },
  {
    id: 'marker', member: 'etcd-b', status: 'fail', why: 'the marker belongs to another member',
    break: (f) => { okInspect(f, 'b').marker!.member = 'etcd-c'; },
    fix: new RegExp(`aws ec2 create-tags --resources ${VOLUME('b')} --tags Key=quorum-keeper/etcd-member,Value=etcd-c`),
  },
  {
    id: 'boot-guard', member: 'etcd-b', status: 'warn', why: 'no boot guard on etcd\'s unit (a hand-built master)',
    break: (f) => { okStatus(f, 'b').guard = 'none'; },
    fix: /^quorum-keeper adopt --cluster prod installs it/, detail: /etcd would start on the bare mount point/,
  },
  {
    id: 'marker', member: 'etcd-a', status: 'fail', why: 'marker and state table disagree',
    break: (f) => { okInspect(f, 'a').marker!.memberId = 'deadbeef'; },
    fix: new RegExp(`--record-member-id ${ID('a')} --volume-id ${VOLUME('a')}`), detail: new RegExp(`marker says member deadbeef, the state table ${ID('a')}`),
  },
  {
    id: 'backup-bucket', status: 'fail', why: 'the bucket does not exist',
    break: (f) => { f.backup!.reachable = { ok: false, error: 'no such bucket' }; f.backup!.encryption = null; f.backup!.keys = []; },
    fix: /aws s3api head-bucket --bucket qk-backups$/,
  },
  {
    id: 'backup-bucket', status: 'fail', why: 'the bucket has no SSE-KMS default',
    break: (f) => { f.backup!.encryption = { algorithm: 'AES256', keyId: null }; f.backup!.keys = []; },
    fix: /^aws s3api put-bucket-encryption --bucket qk-backups .*"SSEAlgorithm":"aws:kms"/,
  },
  {
    id: 'backup-key', status: 'fail', why: 'the key is disabled',
    break: (f) => { f.backup!.keys[0]!.state = 'Disabled'; },
    fix: new RegExp(`^aws kms enable-key --key-id ${KEY_ARN}$`),
  },
  {
    id: 'backup-key', status: 'fail', why: 'the key is pending deletion',
    break: (f) => { f.backup!.keys[0]!.state = 'PendingDeletion'; },
    fix: new RegExp(`^aws kms cancel-key-deletion --key-id ${KEY_ARN} && aws kms enable-key`),
  },
  {
    id: 'stack-functions', status: 'fail', why: 'a function deleted outside CloudFormation',
    break: (f) => Object.assign(f.stack!.functions[2]!, { found: false, error: 'ResourceNotFoundException: Function not found' }),
    fix: /npx osls deploy --stage <stage> --region <region> --param "clusters=prod"/, detail: /ReconcileLambdaFunction \(quorum-keeper-prod-reconcile\) is gone from Lambda/,
  },
  {
    id: 'stack-functions', status: 'fail', why: 'the stack does not exist',
    break: (f) => { f.stack = { name: 'quorum-keeper-prod', error: 'ValidationError: Stack with id quorum-keeper-prod does not exist', functions: [], rules: [] }; },
    fix: /npx osls info/,
  },
  {
    id: 'stack-rules', status: 'fail', why: 'a schedule rule disabled',
    break: (f) => { f.stack!.rules[2]!.state = 'DISABLED'; },
    fix: /^aws events enable-rule --name quorum-keeper-prod-ReconcileScheduleRule-1X2Y3Z$/,
  },
  {
    id: 'stack-rules', status: 'fail', why: 'a rule on a custom bus disabled',
    break: (f) => Object.assign(f.stack!.rules[0]!, { physicalId: 'qk-bus|quorum-keeper-prod-lifecycle', state: 'DISABLED' }),
    fix: /^aws events enable-rule --name quorum-keeper-prod-lifecycle --event-bus-name qk-bus$/,
  },
];

describe('doctor: judge', () => {
  it('a good cluster passes every check (nothing skipped, warned or failed)', () => {
    const checks = judge(goodFacts());
    expect(checks.filter((c) => c.status !== 'pass')).toEqual([]);
    // Every check is there: cluster-wide ones once, per-slot ones once per slot.
    expect(new Set(checks.map((c) => c.id))).toEqual(new Set(CHECK_IDS));
    expect(checks.filter((c) => c.id === 'launch-hook').map((c) => c.member)).toEqual(['etcd-a', 'etcd-b', 'etcd-c']);
    expect(checks.every((c) => c.fix === undefined)).toBe(true);
  });

  it('every check has at least one row below', () => {
    expect(new Set(ROWS.map((r) => r.id))).toEqual(new Set(CHECK_IDS));
  });

  it.each(ROWS.map((r) => [`${r.id}${r.member ? ` (${r.member})` : ''}: ${r.why}`, r] as const))('%s', (_name, row) => {
    const f = goodFacts();
    row.break(f);
    const checks = judge(f);
    const target = checks.find((c) => c.id === row.id && c.member === row.member);
    expect(target).toMatchObject({ status: row.status });
    expect(target!.fix).toMatch(row.fix);
    if (row.detail) expect(target!.detail).toMatch(row.detail);
    // Nothing else went wrong but what this break rightly brings with it.
    const expected = [key(target!), ...(row.also ?? [])];
    const others = bad(checks).filter((k) => !expected.includes(k) && !expected.includes(k.split('@')[0]!));
    expect(others).toEqual([]);
  });

  it('without a bucket or a stack, those checks are skipped with a note; a slot not asked skips its host checks', () => {
    const f = goodFacts();
    f.backup = null;
    f.stack = null;
    f.instances[INSTANCE('a')]!.agent = 'Inactive';
    delete f.hosts['etcd-a'];
    const checks = judge(f);
    expect(checks.filter((c) => c.status === 'skip').map(key).sort()).toEqual(
      ['backup-bucket', 'backup-key', 'boot-guard@etcd-a', 'data-dir@etcd-a', 'etcd-version@etcd-a', 'host-env@etcd-a', 'marker@etcd-a', 'stack-functions', 'stack-rules'],
    );
    expect(checks.find((c) => c.id === 'backup-bucket')!.detail).toMatch(/no backup bucket given \(--bucket or QK_BACKUP_BUCKET/);
    expect(checks.find((c) => c.id === 'host-env' && c.member === 'etcd-a')!.detail).toMatch(new RegExp(`the SSM agent on ${INSTANCE('a')} is Inactive`));
    expect(bad(checks)).toEqual(['ssm-agent@etcd-a']);
  });

  it('the drain margin is the retirement\'s (lib/aws/lb.ts)', () => {
    expect(DRAIN_MARGIN_SEC).toBe(LB_DRAIN_MARGIN_SEC);
  });
});

describe('doctor: output', () => {
  it('one line per check, the fix indented below, a summary last', () => {
    const f = goodFacts();
    asgOf(f, 'b').max = 2;
    f.targetGroups[0]!.deregistrationDelaySec = 300;
    const checks = judge(f);
    const summary = summarise(checks);
    expect(summary).toEqual({ pass: checks.length - 2, warn: 1, fail: 1, skip: 0 });
    const text = renderDoctor({ cluster: 'prod', at: new Date(NOW).toISOString(), ok: false, summary, checks });
    const lines = text.split('\n');
    expect(lines[0]).toBe('PASS  one ASG per member — 3 master ASGs, one per member: etcd-a (prod-master-us-east-1a), etcd-b (prod-master-us-east-1b), etcd-c (prod-master-us-east-1c)');
    const i = lines.findIndex((l) => l.startsWith('FAIL  etcd-b: ASG min = max = desired = 1 — prod-master-us-east-1b: min 1, max 2, desired 1'));
    expect(i).toBeGreaterThan(0);
    expect(lines[i + 1]).toBe('      fix: aws autoscaling update-auto-scaling-group --auto-scaling-group-name prod-master-us-east-1b --min-size 1 --max-size 1 --desired-capacity 1');
    expect(text).toMatch(/\nWARN {2}deregistration delay — prod-apiserver: 300 s .*\n {6}fix: aws elbv2 modify-target-group-attributes /);
    expect(lines.at(-1)).toBe(`doctor prod: FAILED — ${checks.length - 2} pass, 1 warn, 1 fail, 0 skip`);
    expect(lines.filter((l) => /^(PASS|WARN|FAIL|SKIP) {2}/.test(l))).toHaveLength(checks.length);
  });

  it('usage: --cluster is required and --stack must be a stack name (exit 2, before any AWS call)', async () => {
    const run = async (args: string[]) => {
      let err = '';
      const code = await main(['doctor', ...args], { out: () => undefined, err: (x) => (err += x), ask: null, env: { AWS_REGION: 'us-east-1' } });
      return { code, err };
    };
    expect(await run([])).toMatchObject({ code: 2, err: expect.stringContaining('missing --cluster') as unknown });
    expect(await run(['--cluster', 'prod', '--stack', 'not a stack'])).toMatchObject({ code: 2, err: expect.stringContaining('invalid --stack "not a stack": a CloudFormation stack name') as unknown });
  });
});
