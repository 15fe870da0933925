/**
 * Auto Scaling lifecycle actions, which moto does not implement (HTTP 500):
 * CompleteLifecycleAction and RecordLifecycleActionHeartbeat are answered from the sandbox's
 * LifecycleModel (and recorded there), and instances with a pending action read
 * Pending:Wait / Terminating:Wait as on AWS. Instance refreshes (StartInstanceRefresh,
 * DescribeInstanceRefreshes), which moto lacks too, run in the sandbox's AsgModel. A group's
 * InstanceLifecyclePolicy (CreateAutoScalingGroup / UpdateAutoScalingGroup), which moto drops,
 * is kept and shown ("RetentionTriggers: TerminateHookAbandon retain | terminate",
 * https://docs.aws.amazon.com/autoscaling/ec2/userguide/instance-lifecycle-policy.html).
 */
import { randomUUID } from 'node:crypto';
import type { InstanceRefresh } from '../asg-model';
import { type Handler, type ParsedRequest, queryError, queryOk, type Reply, type Routes } from '../protocol';
import type { SandboxState } from './state';

export function autoscalingRoutes(sb: SandboxState, forward: Handler): Routes {
  return {
    'autoscaling:CompleteLifecycleAction': (r) => Promise.resolve(completeLifecycleAction(sb, r)),
    'autoscaling:RecordLifecycleActionHeartbeat': (r) => Promise.resolve(recordHeartbeat(sb, r)),
    'autoscaling:DescribeAutoScalingInstances': (r) => withWaitStates(sb, forward, r),
    'autoscaling:DescribeAutoScalingGroups': async (r) => withLifecyclePolicies(sb, await withWaitStates(sb, forward, r)),
    'autoscaling:CreateAutoScalingGroup': (r) => keepLifecyclePolicy(sb, forward, r),
    'autoscaling:UpdateAutoScalingGroup': (r) => keepLifecyclePolicy(sb, forward, r),
    'autoscaling:StartInstanceRefresh': (r) => startInstanceRefresh(sb, r),
    'autoscaling:DescribeInstanceRefreshes': (r) => Promise.resolve(describeInstanceRefreshes(sb, r)),
  };
}

const XMLNS = 'http://autoscaling.amazonaws.com/doc/2011-01-01/';
const queryResult = (action: string, inner: string): Reply => ({
  status: 200, headers: { 'content-type': 'text/xml' },
  body: `<${action}Response xmlns="${XMLNS}"><${action}Result>${inner}</${action}Result><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></${action}Response>`,
});

async function startInstanceRefresh(sb: SandboxState, r: ParsedRequest): Promise<Reply> {
  const asg = r.form?.get('AutoScalingGroupName') ?? '';
  // "You can't start an instance refresh while another one is in progress" (InstanceRefreshInProgress).
  if ([...sb.asgModel.refreshes.values()].some((x) => x.asg === asg && x.status === 'InProgress')) {
    return queryError('InstanceRefreshInProgress', `An Instance Refresh is already in progress and blocks the execution of this Instance Refresh.`);
  }
  try {
    const refresh = await sb.asgModel.startRefresh(asg);
    return queryResult('StartInstanceRefresh', `<InstanceRefreshId>${refresh.id}</InstanceRefreshId>`);
  } catch (err) {
    return queryError('ValidationError', err instanceof Error ? err.message : String(err));
  }
}

function describeInstanceRefreshes(sb: SandboxState, r: ParsedRequest): Reply {
  const asg = r.form?.get('AutoScalingGroupName') ?? '';
  const member = (x: InstanceRefresh) => `<member><InstanceRefreshId>${x.id}</InstanceRefreshId><AutoScalingGroupName>${x.asg}</AutoScalingGroupName>`
    + `<Status>${x.status}</Status><StatusReason>${x.statusReason}</StatusReason><StartTime>${x.startedAt.toISOString()}</StartTime>`
    + `${x.endedAt ? `<EndTime>${x.endedAt.toISOString()}</EndTime>` : ''}<PercentageComplete>${x.status === 'Successful' ? 100 : 0}</PercentageComplete><InstancesToUpdate>${x.status === 'Successful' ? 0 : 1}</InstancesToUpdate></member>`;
  const list = [...sb.asgModel.refreshes.values()].filter((x) => x.asg === asg).sort((a, b) => b.startedAt.getTime() - a.startedAt.getTime());
  return queryResult('DescribeInstanceRefreshes', `<InstanceRefreshes>${list.map(member).join('')}</InstanceRefreshes>`);
}

/** The lifecycle action a call names: its group and hook, and its token or instance. */
function actionOf(f: URLSearchParams): { asg: string; hook: string; token?: string; instanceId?: string } {
  const token = f.get('LifecycleActionToken') ?? undefined;
  const instanceId = f.get('InstanceId') ?? undefined;
  return {
    asg: f.get('AutoScalingGroupName') ?? '', hook: f.get('LifecycleHookName') ?? '',
    ...(token !== undefined ? { token } : {}), ...(instanceId !== undefined ? { instanceId } : {}),
  };
}

function completeLifecycleAction(sb: SandboxState, r: ParsedRequest): Reply {
  const f = r.form ?? new URLSearchParams();
  const error = sb.lifecycle.complete({ ...actionOf(f), result: f.get('LifecycleActionResult') ?? '' });
  return error ? queryError('ValidationError', error) : queryOk('CompleteLifecycleAction');
}

function recordHeartbeat(sb: SandboxState, r: ParsedRequest): Reply {
  const error = sb.lifecycle.heartbeat(actionOf(r.form ?? new URLSearchParams()));
  return error ? queryError('ValidationError', error) : queryOk('RecordLifecycleActionHeartbeat');
}

/**
 * moto puts every ASG instance InService at once; while a lifecycle action is pending AWS
 * reports Pending:Wait / Terminating:Wait, and in between the states the ASG model holds
 * (`between`: Terminating:Proceed until the instance is gone; Pending for a replacement whose
 * launch action has not begun). Rewrite LifecycleState for those instances: a moment of
 * "InService" that AWS never shows would let a reader think a slot whole that is not.
 */
async function withWaitStates(sb: SandboxState, forward: Handler, r: ParsedRequest): Promise<Reply> {
  const reply = withAlongside(sb, r, await forward(r));
  const model = sb.asgModel;
  if (reply.status !== 200 || (sb.lifecycle.pending.size === 0 && model.between.size === 0 && model.launchingInto.size === 0)) return reply;
  const states = new Map<string, string>(model.between);
  for (const a of sb.lifecycle.pending.values()) states.set(a.instanceId, a.transition === 'autoscaling:EC2_INSTANCE_LAUNCHING' ? 'Pending:Wait' : 'Terminating:Wait');
  const stateOf = (id: string, group: string | undefined): string | undefined => {
    const known = states.get(id);
    if (known) return known;
    const before = group === undefined ? undefined : model.launchingInto.get(group);
    return before && !before.has(id) ? 'Pending' : undefined;
  };
  const rewrite = (xml: string, group: string | undefined): string =>
    // Innermost <member> blocks: one per instance (DescribeAutoScalingInstances names its group).
    xml.replace(/<member>((?:(?!<member>)[\s\S])*?)<\/member>/g, (block, inner: string) => {
      const id = /<InstanceId>([^<]+)<\/InstanceId>/.exec(inner)?.[1];
      const state = id ? stateOf(id, group ?? /<AutoScalingGroupName>([^<]+)<\/AutoScalingGroupName>/.exec(inner)?.[1]) : undefined;
      return state ? block.replace(/<LifecycleState>[^<]*<\/LifecycleState>/, `<LifecycleState>${state}</LifecycleState>`) : block;
    });
  let xml = reply.body.toString();
  if (r.action === 'DescribeAutoScalingGroups') {
    // Each group's <Instances> list, rewritten knowing its group (never reaching into the next
    // group's: a group with no instances may have no list).
    xml = xml.replace(/<AutoScalingGroupName>([^<]+)<\/AutoScalingGroupName>((?:(?!<AutoScalingGroupName>)[\s\S])*?)<Instances>([\s\S]*?)<\/Instances>/g,
      (_all, group: string, mid: string, list: string) => `<AutoScalingGroupName>${group}</AutoScalingGroupName>${mid}<Instances>${rewrite(list, group)}</Instances>`);
  } else {
    xml = rewrite(xml, undefined);
  }
  return { ...reply, body: xml };
}

/**
 * Instances a group launched beside its current one (launch before terminate: an instance
 * maintenance policy with MaxHealthyPercentage above 100 lets a min = max = 1 group run two for
 * a while). moto cannot hold more than MaxSize, so the sandbox adds them to the group's
 * answers itself: they belong to the group, as on AWS.
 */
function withAlongside(sb: SandboxState, r: ParsedRequest, reply: Reply): Reply {
  if (reply.status !== 200 || sb.alongside.size === 0) return reply;
  let xml = reply.body.toString();
  const asked = new Set([...(r.form?.entries() ?? [])].filter(([k]) => /^InstanceIds\.member\.\d+$/.test(k)).map(([, v]) => v));
  for (const [id, a] of sb.alongside) {
    if (xml.includes(`<InstanceId>${id}</InstanceId>`)) continue;
    const inner = `<InstanceId>${id}</InstanceId><AvailabilityZone>${a.az}</AvailabilityZone><LifecycleState>InService</LifecycleState><HealthStatus>HEALTHY</HealthStatus><ProtectedFromScaleIn>false</ProtectedFromScaleIn><InstanceType>t3.medium</InstanceType>`;
    if (r.action === 'DescribeAutoScalingInstances') {
      if (asked.size > 0 && !asked.has(id)) continue;
      const member = `<member>${inner.replace('</InstanceId>', `</InstanceId><AutoScalingGroupName>${a.asg}</AutoScalingGroupName>`)}</member>`;
      xml = xml.includes('<AutoScalingInstances/>') ? xml.replace('<AutoScalingInstances/>', `<AutoScalingInstances>${member}</AutoScalingInstances>`) : xml.replace('</AutoScalingInstances>', `${member}</AutoScalingInstances>`);
    } else {
      const at = xml.indexOf(`<AutoScalingGroupName>${a.asg}</AutoScalingGroupName>`);
      if (at < 0) continue;
      const open = xml.indexOf('<Instances>', at);
      const empty = xml.indexOf('<Instances/>', at);
      if (open >= 0 && (empty < 0 || open < empty)) xml = `${xml.slice(0, open + 11)}<member>${inner}</member>${xml.slice(open + 11)}`;
      else if (empty >= 0) xml = `${xml.slice(0, empty)}<Instances><member>${inner}</member></Instances>${xml.slice(empty + 12)}`;
    }
  }
  return { ...reply, body: xml };
}

const POLICY_KEY = 'InstanceLifecyclePolicy.RetentionTriggers.TerminateHookAbandon';

/** moto accepts the group's instance lifecycle policy and forgets it: kept here once moto said yes. */
async function keepLifecyclePolicy(sb: SandboxState, forward: Handler, r: ParsedRequest): Promise<Reply> {
  const reply = await forward(r);
  const group = r.form?.get('AutoScalingGroupName');
  const policy = r.form?.get(POLICY_KEY);
  if (reply.status === 200 && group && (policy === 'retain' || policy === 'terminate')) sb.lifecyclePolicies.set(group, policy);
  return reply;
}

function withLifecyclePolicies(sb: SandboxState, reply: Reply): Reply {
  if (reply.status !== 200 || sb.lifecyclePolicies.size === 0) return reply;
  let xml = reply.body.toString();
  for (const [group, policy] of sb.lifecyclePolicies) {
    xml = xml.replace(`<AutoScalingGroupName>${group}</AutoScalingGroupName>`,
      `<AutoScalingGroupName>${group}</AutoScalingGroupName><InstanceLifecyclePolicy><RetentionTriggers><TerminateHookAbandon>${policy}</TerminateHookAbandon></RetentionTriggers></InstanceLifecyclePolicy>`);
  }
  return { ...reply, body: xml };
}
