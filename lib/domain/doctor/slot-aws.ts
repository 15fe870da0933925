/**
 * The doctor's per-slot checks of the AWS set-up: capacity, hooks, health check, load balancer, retention, tags, instance, volumes, SSM agent.
 */
import { type Transition } from './facts';
import { type Ctx, HOOK_DEFAULT_RESULT, HOOK_HEARTBEAT_SEC, HOOK_NAMES, LAUNCHING, RECONCILE_EVERY_SEC, type Slot, TERMINATING, type Verdict, asgTagArg, fail, pass, skip, tagArg, warn, worst } from './rules';

// --- per-slot checks ---------------------------------------------------------------------------

export function asgCapacity(_c: Ctx, s: Slot): Verdict {
  const g = s.asg;
  if (g.min === 1 && g.max === 1 && g.desired === 1) return pass(`${g.name}: min 1, max 1, desired 1`);
  return fail(`${g.name}: min ${g.min}, max ${g.max}, desired ${g.desired} — a master slot holds exactly one master (a second would have no volume, none leaves the member without its master)`,
    `aws autoscaling update-auto-scaling-group --auto-scaling-group-name ${g.name} --min-size 1 --max-size 1 --desired-capacity 1`);
}

export function hookCheck(transition: Transition) {
  return (_c: Ctx, s: Slot): Verdict => {
    const g = s.asg;
    const want = HOOK_DEFAULT_RESULT[transition];
    const hooks = g.hooks.filter((h) => h.transition === transition);
    const put = (name: string) => `aws autoscaling put-lifecycle-hook --auto-scaling-group-name ${g.name} --lifecycle-hook-name ${name} --lifecycle-transition ${transition} --heartbeat-timeout ${HOOK_HEARTBEAT_SEC} --default-result ${want}`;
    if (hooks.length === 0) {
      const why = transition === LAUNCHING ? 'a new master would come in without its volume, etcd membership or load balancer registration' : 'a master would be terminated with etcd running: no drain, no leadership hand-over, no clean detach';
      return fail(`${g.name} has no ${transition} hook: ${why}`, put(HOOK_NAMES[transition]));
    }
    const h = hooks[0]!;
    const vs: Verdict[] = [];
    if (h.defaultResult !== want) {
      const why = transition === LAUNCHING
        ? 'an expired hook would let a master join without its data being checked'
        : 'ABANDON does not stop a termination (without a retention policy), and with one an expired hook leaves the master Retained and running';
      const v = `${h.name}: DefaultResult ${h.defaultResult}, not ${want} — ${why}`;
      vs.push(transition === LAUNCHING ? fail(v, put(h.name)) : warn(v, put(h.name)));
    }
    if (transition === TERMINATING && h.heartbeatTimeoutSec < 2 * RECONCILE_EVERY_SEC) {
      vs.push(fail(`${h.name}: HeartbeatTimeout ${h.heartbeatTimeoutSec} s — the reconciler heartbeats held hooks every ${RECONCILE_EVERY_SEC} s: one late run and a held master's hook expires into CONTINUE`, put(h.name)));
    } else if (h.heartbeatTimeoutSec < HOOK_HEARTBEAT_SEC) {
      vs.push(warn(`${h.name}: HeartbeatTimeout ${h.heartbeatTimeoutSec} s, under the ${HOOK_HEARTBEAT_SEC} s the operator guide sets`, put(h.name)));
    }
    return worst(vs, `${h.name}: ${transition.replace('autoscaling:', '')}, heartbeat ${h.heartbeatTimeoutSec} s, default ${h.defaultResult}`);
  };
}

export function asgHealthCheck(_c: Ctx, s: Slot): Verdict {
  const g = s.asg;
  const types = g.healthCheckType.split(',').map((t) => t.trim()).filter(Boolean);
  const bad = types.filter((t) => t === 'ELB' || t === 'VPC_LATTICE');
  if (bad.length === 0) return pass(`${g.name}: ${g.healthCheckType || 'EC2'}`);
  return fail(`${g.name}: ${g.healthCheckType} health checks (grace ${g.healthCheckGracePeriodSec} s) — an etcd outage makes every API server unhealthy and the ASGs replace every master, and a master awaiting disaster recovery would be replaced before a restore could run`,
    `aws autoscaling update-auto-scaling-group --auto-scaling-group-name ${g.name} --health-check-type EC2`);
}

export function asgLoadBalancer(_c: Ctx, s: Slot): Verdict {
  const g = s.asg;
  if (g.targetGroupArns.length === 0 && g.loadBalancerNames.length === 0) return pass(`${g.name}: none attached (Quorum Keeper registers and drains masters itself)`);
  const fixes = [
    ...(g.targetGroupArns.length ? [`aws autoscaling detach-load-balancer-target-groups --auto-scaling-group-name ${g.name} --target-group-arns ${g.targetGroupArns.join(' ')}`] : []),
    ...(g.loadBalancerNames.length ? [`aws autoscaling detach-load-balancers --auto-scaling-group-name ${g.name} --load-balancer-names ${g.loadBalancerNames.join(' ')}`] : []),
  ];
  return fail(`${g.name} has ${[...g.targetGroupArns, ...g.loadBalancerNames].join(', ')} attached: the ASG would register a new master before its etcd is in, and deregister a retiring one before its turn`, fixes.join('; '));
}

export function asgRetention(_c: Ctx, s: Slot): Verdict {
  const g = s.asg;
  if (g.terminateHookAbandon === 'retain') return pass(`${g.name}: TerminateHookAbandon=retain`);
  return warn(`${g.name}: no instance lifecycle policy retaining on TerminateHookAbandon — a last line against a terminate hook someone completes by hand with ABANDON`,
    `aws autoscaling update-auto-scaling-group --auto-scaling-group-name ${g.name} --instance-lifecycle-policy 'RetentionTriggers={TerminateHookAbandon=retain}'`);
}

export function asgTags(c: Ctx, s: Slot): Verdict {
  const g = s.asg;
  const { tags, cluster } = c.f;
  const vs: Verdict[] = [];
  if (!g.clusterTagPropagated) {
    vs.push(fail(`${g.name}: ${tags.cluster} is not propagated at launch — new masters lack it, and Quorum Keeper's roles may attach volumes and run commands only on instances carrying it`,
      `aws autoscaling create-or-update-tags --tags ${asgTagArg(g.name, tags.cluster, cluster)}`));
  }
  if (!g.memberTagPropagated) {
    vs.push(warn(`${g.name}: ${tags.member} is not propagated at launch (the operator guide propagates both tags)`, `aws autoscaling create-or-update-tags --tags ${asgTagArg(g.name, tags.member, s.member)}`));
  }
  return worst(vs, `${g.name}: ${tags.cluster}=${cluster}, ${tags.member}=${s.member}, both propagated at launch`);
}

export function masterInstance(c: Ctx, s: Slot): Verdict {
  if (s.instanceId) {
    const others = s.asg.instances.filter((i) => i.instanceId !== s.instanceId);
    return pass(`${s.instanceId} InService${others.length ? ` (also ${others.map((i) => `${i.instanceId} ${i.lifecycleState}`).join(', ')})` : ''}`);
  }
  const now = s.asg.instances.map((i) => `${i.instanceId} is ${i.lifecycleState}`).join(', ');
  return fail(`${s.asg.name} has no InService master${now ? ` (${now})` : ''}`,
    `see why: aws autoscaling describe-scaling-activities --auto-scaling-group-name ${s.asg.name} --max-items 5; a master left in Pending:Wait is brought in by the reconciler (quorum-keeper plan --cluster ${c.f.cluster} shows it)`);
}

export function instanceTag(c: Ctx, s: Slot): Verdict {
  if (!s.instanceId) return skip('no InService master');
  const i = c.f.instances[s.instanceId];
  if (!i) return skip(`${s.instanceId} not described`);
  const { tags, cluster } = c.f;
  if (i.tags[tags.cluster] === cluster) return pass(`${s.instanceId}: ${tags.cluster}=${cluster}`);
  return fail(`${s.instanceId} does not carry ${tags.cluster}=${cluster}${i.tags[tags.cluster] !== undefined ? ` (it says ${i.tags[tags.cluster]})` : ''}: its replacement flows would stop with AccessDenied`,
    `aws ec2 create-tags --resources ${s.instanceId} --tags ${tagArg(tags.cluster, cluster)}`);
}

export function volumeCount(c: Ctx, s: Slot): Verdict {
  const { tags, cluster } = c.f;
  if (s.volumes.length === 1) return pass(`${s.volumes[0]!.volumeId} (${s.volumes[0]!.az})`);
  if (s.volumes.length === 0) {
    // The volume on this master's etcd device that carries only part of the tags is the likely one.
    const guess = s.instanceId ? c.f.volumes.find((v) => v.attachedTo === s.instanceId && v.memberTag === undefined) : undefined;
    return fail(`no volume carries ${tags.cluster}=${cluster} and ${tags.member}=${s.member}: a replacement of this master would ABANDON (its data has nowhere to come from)`,
      `aws ec2 create-tags --resources ${guess?.volumeId ?? `<${s.member}'s etcd volume>`} --tags ${tagArg(tags.cluster, cluster)} ${tagArg(tags.member, s.member)}`);
  }
  const mine = s.volumes.find((v) => v.attachedTo && v.attachedTo === s.instanceId);
  const others = s.volumes.filter((v) => v !== mine);
  return fail(`${s.volumes.length} volumes carry ${tags.member}=${s.member}: ${s.volumes.map((v) => `${v.volumeId} (${v.az}${v.attachedTo ? `, on ${v.attachedTo}` : ''})`).join(', ')} — a replacement refuses to guess`,
    `${mine ? `${mine.volumeId} is on the master; ` : ''}after checking which holds the member's data, untag the others: aws ec2 delete-tags --resources ${others.map((v) => v.volumeId).join(' ')} --tags Key=${tags.member}`);
}

export function volumeAz(_c: Ctx, s: Slot): Verdict {
  if (s.volumes.length !== 1) return skip('not exactly one volume');
  const v = s.volumes[0]!;
  const azs = [...new Set(s.asg.subnets.length ? s.asg.subnets.map((x) => x.az ?? '?') : s.asg.availabilityZones)].sort();
  if (azs.length === 1 && azs[0] === v.az) return pass(`${v.volumeId} and ${s.asg.name} in ${v.az}`);
  const here = s.asg.subnets.filter((x) => x.az === v.az).map((x) => x.subnetId);
  const fix = `aws autoscaling update-auto-scaling-group --auto-scaling-group-name ${s.asg.name} --vpc-zone-identifier ${here.length ? here.join(',') : `<a subnet in ${v.az}>`}`;
  return fail(`${s.asg.name} launches into ${azs.join(', ')} but ${v.volumeId} is in ${v.az}: a master launched elsewhere cannot attach it`, fix);
}

export function ssmAgent(c: Ctx, s: Slot): Verdict {
  if (!s.instanceId) return skip('no InService master');
  const agent = c.f.instances[s.instanceId]?.agent ?? 'not-registered';
  if (agent === 'Online') return pass(`${s.instanceId} Online`);
  return fail(`the SSM agent on ${s.instanceId} is ${agent}: no host script can run there (mount, etcd, backups, the survey)`,
    `on ${s.instanceId}: sudo systemctl restart amazon-ssm-agent, and give its instance profile AmazonSSMManagedInstanceCore; check: aws ssm describe-instance-information --filters Key=InstanceIds,Values=${s.instanceId}`);
}
