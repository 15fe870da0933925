/**
 * The doctor's cluster-wide checks: ASGs per member, volume tags, the target group, etcd over TLS, strays, the backup bucket and key, the stack.
 */
import { APISERVER_PORT } from '../../host/layout';
import { patterns } from '../../validate';
import { unclaimed } from '../identity';
import { assessCertificates, CERT_WARN_DAYS } from '../health';
import { type TargetGroupFacts } from './facts';
import { type Ctx, DEREGISTRATION_DELAY_SEC, DRAIN_MARGIN_SEC, HEALTHY_THRESHOLD, HEALTH_CHECK_INTERVAL_SEC, TERMINATING, type Verdict, asgTagArg, fail, pass, plural, skip, tagArg, warn, worst } from './rules';

// --- per-cluster checks ------------------------------------------------------------------------

export function asgPerMember(c: Ctx): Verdict {
  const { f } = c;
  if (f.asgs.length === 0) {
    return fail(`no Auto Scaling group carries ${f.tags.cluster}=${f.cluster}`, `tag each master ASG: aws autoscaling create-or-update-tags --tags ${asgTagArg('<master ASG>', f.tags.cluster, f.cluster)} ${asgTagArg('<master ASG>', f.tags.member, '<member, e.g. etcd-a>')}`);
  }
  const bad: Verdict[] = [];
  for (const g of f.asgs) {
    if (g.memberTag === undefined || !patterns.memberName.test(g.memberTag)) {
      const what = g.memberTag === undefined ? `has no ${f.tags.member} tag` : `has an invalid ${f.tags.member} tag ${JSON.stringify(g.memberTag)} (lowercase letters, digits, dashes, 1–63)`;
      bad.push(fail(`${g.name} is tagged for ${f.cluster} but ${what}: it is no slot, and Quorum Keeper leaves it alone`,
        `aws autoscaling create-or-update-tags --tags ${asgTagArg(g.name, f.tags.member, '<its member, e.g. etcd-a>')}`));
    }
  }
  const byMember = new Map<string, string[]>();
  for (const g of f.asgs) if (g.memberTag !== undefined && patterns.memberName.test(g.memberTag)) byMember.set(g.memberTag, [...(byMember.get(g.memberTag) ?? []), g.name]);
  for (const [member, names] of byMember) {
    if (names.length > 1) {
      bad.push(fail(`${names.join(' and ')} are both tagged ${f.tags.member}=${member}: one member, one ASG`,
        `give each master ASG its own member, e.g. aws autoscaling create-or-update-tags --tags ${asgTagArg(names[1]!, f.tags.member, '<its own member>')}`));
    }
  }
  return worst(bad, `${plural(c.slots.length, 'master ASG')}, one per member: ${c.slots.map((s) => `${s.member} (${s.asg.name})`).join(', ')}`);
}

export function volumeTags(c: Ctx): Verdict {
  const { f } = c;
  const members = new Set(c.slots.map((s) => s.member));
  const odd = f.volumes.filter((v) => v.memberTag === undefined || !members.has(v.memberTag));
  if (odd.length === 0) return pass(`${plural(f.volumes.length, 'volume')} tagged ${f.tags.cluster}=${f.cluster}, each a slot's`);
  return worst(odd.map((v) => warn(
    `${v.volumeId} (${v.az}${v.attachedTo ? `, attached to ${v.attachedTo}` : ''}) carries ${f.tags.cluster}=${f.cluster} but ${v.memberTag === undefined ? `no ${f.tags.member} tag` : `${f.tags.member}=${v.memberTag}, which no master ASG has`}`,
    `if it is a member's volume: aws ec2 create-tags --resources ${v.volumeId} --tags ${tagArg(f.tags.member, '<its member>')}; if not: aws ec2 delete-tags --resources ${v.volumeId} --tags Key=${f.tags.cluster}`,
  )), '');
}

export function targetGroup(c: Ctx): Verdict {
  const { f } = c;
  if (f.targetGroups.length === 0) {
    return fail(`no target group carries ${f.tags.cluster}=${f.cluster}: replaced masters are never registered with the load balancer, and retiring ones never drained`,
      `aws elbv2 add-tags --resource-arns <your API server target group ARN> --tags ${tagArg(f.tags.cluster, f.cluster)}`);
  }
  return pass(`${f.targetGroups.map((t) => t.name).join(', ')} (${f.targetGroups.length === 1 ? 'tagged' : 'each tagged; masters are registered in all'})`);
}

export function tgPort(c: Ctx): Verdict {
  const tgs = c.f.targetGroups;
  if (tgs.length === 0) return skip('no target group');
  return worst(tgs.filter((t) => t.port !== APISERVER_PORT).map((t) => fail(
    `${t.name} forwards to port ${t.port ?? 'none'}, not kube-apiserver's ${APISERVER_PORT}`,
    `a target group's port cannot be changed: aws elbv2 create-target-group --name ${t.name}-${APISERVER_PORT} --protocol ${t.protocol ?? 'TCP'} --port ${APISERVER_PORT} --vpc-id <VPC> --health-check-interval-seconds ${HEALTH_CHECK_INTERVAL_SEC} --healthy-threshold-count ${HEALTHY_THRESHOLD} --tags ${tagArg(c.f.tags.cluster, c.f.cluster)}; point the listener at it, then aws elbv2 remove-tags --resource-arns ${t.arn} --tag-keys ${c.f.tags.cluster}`,
  )), tgs.map((t) => `${t.name} on ${t.port}`).join(', '));
}

export function minTerminateHeartbeat(c: Ctx): number | null {
  const t = c.slots.flatMap((s) => s.asg.hooks.filter((h) => h.transition === TERMINATING).map((h) => h.heartbeatTimeoutSec));
  return t.length ? Math.min(...t) : null;
}

export function tgDeregistrationDelay(c: Ctx): Verdict {
  const tgs = c.f.targetGroups;
  if (tgs.length === 0) return skip('no target group');
  const hb = minTerminateHeartbeat(c);
  const cmd = (t: TargetGroupFacts) => `aws elbv2 modify-target-group-attributes --target-group-arn ${t.arn} --attributes Key=deregistration_delay.timeout_seconds,Value=${DEREGISTRATION_DELAY_SEC}`;
  return worst(tgs.map((t) => {
    const drain = t.deregistrationDelaySec + DRAIN_MARGIN_SEC;
    if (hb !== null && drain >= hb) {
      return fail(`${t.name}: a retiring master drains ${t.deregistrationDelaySec} s (+${DRAIN_MARGIN_SEC} s), not under the terminate hook's ${hb} s heartbeat timeout`, cmd(t));
    }
    if (t.deregistrationDelaySec > DEREGISTRATION_DELAY_SEC) {
      return warn(`${t.name}: ${t.deregistrationDelaySec} s — every retirement drains that long (kube-apiserver holds watches open); ${DEREGISTRATION_DELAY_SEC} s is plenty for API clients to reconnect`, cmd(t));
    }
    return pass('');
  }), tgs.map((t) => `${t.name}: ${t.deregistrationDelaySec} s`).join(', '));
}

export function tgHealthChecks(c: Ctx): Verdict {
  const tgs = c.f.targetGroups;
  if (tgs.length === 0) return skip('no target group');
  const want = HEALTH_CHECK_INTERVAL_SEC * HEALTHY_THRESHOLD;
  return worst(tgs.map((t) => {
    const interval = t.healthCheckIntervalSec ?? 30;
    const threshold = t.healthyThreshold ?? 5;
    return interval * threshold > want
      ? warn(`${t.name}: checks every ${interval} s, healthy after ${threshold}: a replaced master stays out of the group (and its launch hook open) ${interval * threshold} s after registration`,
        `aws elbv2 modify-target-group --target-group-arn ${t.arn} --health-check-interval-seconds ${HEALTH_CHECK_INTERVAL_SEC} --healthy-threshold-count ${HEALTHY_THRESHOLD}`)
      : pass('');
  }), tgs.map((t) => `${t.name}: every ${t.healthCheckIntervalSec ?? 30} s × ${t.healthyThreshold ?? 5}`).join(', '));
}

export function etcdReachableCluster(c: Ctx): Verdict {
  const e = c.f.etcd;
  if (e.via === null || e.members.length === 0) {
    return fail(`no master's etcd answered: ${e.tried.join('; ') || 'no InService master to ask'}`,
      `quorum-keeper status --cluster ${c.f.cluster} shows which members are down; with a majority lost for good, follow the disaster-recovery walk-through (docs/operator-guide.md §6)`);
  }
  if (!e.quorum) {
    return fail(`etcd answered through ${e.via} without quorum (its own view of ${e.members.length} members)`,
      `quorum-keeper status --cluster ${c.f.cluster} names the members down; bring them back (their ASGs replace terminated masters), or restore (docs/operator-guide.md §6)`);
  }
  const leader = e.statuses.find((s) => s.isLeader);
  const name = leader ? e.members.find((m) => m.id === leader.memberId)?.name : undefined;
  return pass(`through ${e.via}: ${e.members.length} members, leader ${name ?? leader?.memberId ?? 'unknown'}, ${e.statuses.length} answered`);
}

export function etcdTls(c: Ctx): Verdict {
  const e = c.f.etcd;
  if (e.members.length === 0) return skip('etcd did not answer');
  const plain = e.members.flatMap((m) => [...m.clientUrls, ...m.peerUrls].filter((u) => !u.startsWith('https://')).map((u) => `${m.name || m.id} ${u}`));
  const vs: Verdict[] = [];
  if (plain.length) {
    vs.push(warn(`plain http: ${plain.join(', ')} — production clusters run mutual TLS on client and peer URLs`,
      'set QK_ETCD_SCHEME=https and the five TLS paths in /etc/quorum-keeper/host.env on every master (docs/host-scripts.md#mutual-tls), then replace the masters one at a time'));
  }
  if (e.certs === null) {
    if (!plain.length) vs.push(warn(`the certificates the members serve could not be read${e.errors.length ? `: ${e.errors.join('; ')}` : ''}`, `install openssl on the masters (the survey reads each member's certificate with openssl s_client), then run doctor again`));
  } else {
    const { certificates } = assessCertificates(e.certs, c.f.now);
    const renew = (m: string, k: string) => `renew ${m}'s ${k} certificate: kubeadm certs renew ${k === 'client' ? 'etcd-server' : 'etcd-peer'} on its master, or from your PKI into the file host.env names (${k === 'client' ? 'QK_ETCD_CERT' : 'QK_ETCD_PEER_CERT'})`;
    for (const cert of certificates) {
      if (cert.daysLeft < 0) vs.push(fail(`${cert.member}'s ${cert.kind} certificate (${cert.url}) expired ${cert.notAfter}`, renew(cert.member, cert.kind)));
      else if (cert.daysLeft < CERT_WARN_DAYS) vs.push(warn(`${cert.member}'s ${cert.kind} certificate (${cert.url}) expires in ${Math.floor(cert.daysLeft)} d`, renew(cert.member, cert.kind)));
    }
    const unread = e.errors.filter((x) => x.startsWith('certificates not read'));
    if (unread.length) vs.push(warn(unread.join('; '), 'check that those members answer TLS on their URLs (quorum-keeper status names members down)'));
    const first = certificates[0];
    return worst(vs, `mutual TLS on every client and peer URL; ${certificates.length} certificates read${first ? `, earliest expires in ${Math.floor(first.daysLeft)} d (${first.member} ${first.kind})` : ''}`);
  }
  return worst(vs, 'mutual TLS on every client and peer URL');
}

export function strayMembers(c: Ctx): Verdict {
  const e = c.f.etcd;
  if (e.members.length === 0) return skip('etcd did not answer');
  const strays = unclaimed(e.members, c.identities, c.claims).members.map((id) => e.members.find((m) => m.id === id)!);
  return worst(strays.map((m) => fail(
    `etcd member ${m.name || '(unstarted)'} (${m.id}, ${m.peerUrls.join(',')}) is claimed by no master slot: the reconciler treats it as a stray`,
    `if it is a master's member, tag that master's ASG with its slot (aws autoscaling create-or-update-tags --tags ${asgTagArg('<its ASG>', c.f.tags.member, m.name || '<member>')}); if it is unwanted, remove it: etcdctl member remove ${m.id}`,
  )), `every etcd member is claimed by exactly one slot: ${c.slots.map((s) => `${s.member} → ${c.claims[s.member]?.id ?? '-'} (${c.claims[s.member]?.basis ?? '-'})`).join(', ')}`);
}

export function backupBucket(c: Ctx): Verdict {
  const b = c.f.backup;
  if (!b) return skip('no backup bucket given (--bucket or QK_BACKUP_BUCKET; the stack output BackupBucketName)');
  if (!b.reachable.ok) return fail(`s3://${b.bucket}: ${b.reachable.error}`, `check the name (the stack output BackupBucketName) and that your credentials may s3:ListBucket it: aws s3api head-bucket --bucket ${b.bucket}`);
  if ('error' in (b.encryption ?? {})) {
    return fail(`s3://${b.bucket}: its encryption could not be read: ${(b.encryption as { error: string }).error}`, `aws s3api get-bucket-encryption --bucket ${b.bucket} (needs s3:GetEncryptionConfiguration)`);
  }
  const enc = b.encryption as { algorithm: string; keyId: string | null } | null;
  const kmsFix = `aws s3api put-bucket-encryption --bucket ${b.bucket} --server-side-encryption-configuration '{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"aws:kms","KMSMasterKeyID":"<the stack output BackupKeyArn>"},"BucketKeyEnabled":true}]}'`;
  if (!enc || !enc.algorithm.startsWith('aws:kms')) {
    if (b.kmsKeyId) return pass(`s3://${b.bucket} reachable; backups encrypted with ${b.kmsKeyId} (--kms-key-id), the bucket default is ${enc?.algorithm ?? 'none'}`);
    return fail(`s3://${b.bucket} has no SSE-KMS default encryption (${enc ? enc.algorithm : 'none'}): backups would not be encrypted with a KMS key`, kmsFix);
  }
  return pass(`s3://${b.bucket} reachable, SSE-KMS by default${enc.keyId ? ` with ${enc.keyId}` : ' (aws/s3 key)'}`);
}

export function backupKey(c: Ctx): Verdict {
  const b = c.f.backup;
  if (!b) return skip('no backup bucket given');
  if (b.keys.length === 0) return skip(b.reachable.ok ? 'no customer managed key named by the bucket or --kms-key-id' : 'the bucket could not be read');
  return worst(b.keys.map((k) => {
    if (k.error) return fail(`KMS key ${k.keyId}: ${k.error}`, `check the key exists and your credentials may kms:DescribeKey it: aws kms describe-key --key-id ${k.keyId}`);
    if (k.state === 'Enabled') return pass('');
    const fix = k.state === 'PendingDeletion' ? `aws kms cancel-key-deletion --key-id ${k.keyId} && aws kms enable-key --key-id ${k.keyId}` : `aws kms enable-key --key-id ${k.keyId}`;
    return fail(`KMS key ${k.keyId} is ${k.state ?? 'in an unknown state'}: backups cannot be uploaded or restored`, fix);
  }), b.keys.map((k) => `${k.arn ?? k.keyId} Enabled`).join(', '));
}

export function stackFunctions(c: Ctx): Verdict {
  const s = c.f.stack;
  if (!s) return skip('no stack given (--stack or QK_STACK_NAME)');
  if (s.error) return fail(`stack ${s.name}: ${s.error}`, `check the name and region (npx osls info --stage <stage> --region <region> prints it), or deploy: npx osls deploy --stage <stage> --region <region> --param "clusters=${c.f.cluster}"`);
  if (s.functions.length === 0) return fail(`stack ${s.name} has no Lambda functions: is it Quorum Keeper's?`, `deploy Quorum Keeper: npx osls deploy --stage <stage> --region <region> --param "clusters=${c.f.cluster}"`);
  const redeploy = `redeploy the stack: npx osls deploy --stage <stage> --region <region> --param "clusters=${c.f.cluster}"`;
  return worst(s.functions.map((fn) => {
    if (!/_COMPLETE$/.test(fn.resourceStatus) || fn.resourceStatus.startsWith('DELETE')) return fail(`${fn.logicalId} is ${fn.resourceStatus}`, redeploy);
    if (fn.found === false) return fail(`${fn.logicalId} (${fn.physicalId ?? '?'}) is gone from Lambda${fn.error ? `: ${fn.error}` : ''}`, redeploy);
    if (fn.found === null) return warn(`${fn.logicalId} (${fn.physicalId ?? '?'}) could not be read${fn.error ? `: ${fn.error}` : ''}`, `aws lambda get-function --function-name ${fn.physicalId ?? fn.logicalId} (needs lambda:GetFunction)`);
    return pass('');
  }), `${plural(s.functions.length, 'function')} of ${s.name} present: ${s.functions.map((fn) => fn.physicalId ?? fn.logicalId).join(', ')}`);
}

export function stackRules(c: Ctx): Verdict {
  const s = c.f.stack;
  if (!s) return skip('no stack given (--stack or QK_STACK_NAME)');
  if (s.error) return skip(`stack ${s.name} could not be read`);
  if (s.rules.length === 0) return fail(`stack ${s.name} has no EventBridge rules: no lifecycle event or schedule reaches the functions`, `redeploy the stack: npx osls deploy --stage <stage> --region <region> --param "clusters=${c.f.cluster}"`);
  return worst(s.rules.map((r) => {
    const [bus, name] = r.physicalId?.includes('|') ? r.physicalId.split('|', 2) as [string, string] : [null, r.physicalId];
    if (!/_COMPLETE$/.test(r.resourceStatus) || r.resourceStatus.startsWith('DELETE') || r.state === null) {
      return fail(`${r.logicalId} (${r.physicalId ?? '?'}) is ${r.state === null ? `gone${r.error ? `: ${r.error}` : ''}` : r.resourceStatus}`, `redeploy the stack: npx osls deploy --stage <stage> --region <region> --param "clusters=${c.f.cluster}"`);
    }
    if (r.state !== 'ENABLED') return fail(`${r.logicalId} (${name}) is ${r.state}: its events never reach the function`, `aws events enable-rule --name ${name}${bus ? ` --event-bus-name ${bus}` : ''}`);
    return pass('');
  }), `${plural(s.rules.length, 'rule')} of ${s.name} ENABLED: ${s.rules.map((r) => r.physicalId ?? r.logicalId).join(', ')}`);
}
