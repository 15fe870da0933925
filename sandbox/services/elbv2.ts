/**
 * ELBv2 target health, which moto reports healthy as soon as a target is registered and drops
 * the moment it is deregistered:
 *   - DescribeTargetHealth keeps moto's answer but sets each registered target's state from its
 *     host's apiserver /readyz;
 *   - a deregistered target DRAINS for its target group's `deregistration_delay.timeout_seconds`
 *     (default 300 s): ELBv2 completes a deregistration early only when the target has no
 *     in-flight requests or open connections, and kube-apiserver always has watches open, so the
 *     sandbox drains for the whole delay (State `draining`, Reason `Target.DeregistrationInProgress`;
 *     https://docs.aws.amazon.com/elasticloadbalancing/latest/network/target-group-attributes.html#deregistration-delay).
 */
import { deregistrationDelaySec, healthChecks } from '../../lib/aws/lb';
import type { Handler, ParsedRequest, Reply, Routes } from '../protocol';
import type { SandboxState } from './state';

export function elbv2Routes(sb: SandboxState, forward: Handler): Routes {
  return {
    'elasticloadbalancing:DescribeTargetHealth': (r) => describeTargetHealth(sb, forward, r),
    'elasticloadbalancing:DeregisterTargets': (r) => deregisterTargets(sb, forward, r),
    'elasticloadbalancing:RegisterTargets': async (r) => {
      // A target registered again stops draining.
      for (const key of targetKeys(r)) sb.draining.delete(key);
      const reply = await forward(r);
      if (reply.status === 200) for (const key of targetKeys(r)) if (!sb.registeredAt.has(key)) sb.registeredAt.set(key, Date.now());
      return reply;
    },
  };
}

/** `<tg>|<id>|<port>` of each target a Register/DeregisterTargets request names. */
function targetKeys(r: ParsedRequest): string[] {
  const f = r.form;
  const tg = f?.get('TargetGroupArn') ?? '';
  const keys: string[] = [];
  for (let n = 1; f?.has(`Targets.member.${n}.Id`); n++) keys.push(`${tg}|${f.get(`Targets.member.${n}.Id`)}|${f.get(`Targets.member.${n}.Port`) ?? ''}`);
  return keys;
}

async function deregisterTargets(sb: SandboxState, forward: Handler, r: ParsedRequest): Promise<Reply> {
  const tg = r.form?.get('TargetGroupArn') ?? '';
  const delaySec = await deregistrationDelaySec(sb.elb, tg).catch(() => 300);
  const reply = await forward(r);
  if (reply.status === 200) {
    for (const key of targetKeys(r)) {
      sb.draining.set(key, Date.now() + delaySec * 1000);
      sb.registeredAt.delete(key);
    }
  }
  return reply;
}

const DRAINING = '<TargetHealth><State>draining</State><Reason>Target.DeregistrationInProgress</Reason><Description>Target deregistration is in progress</Description></TargetHealth>';

/**
 * A newly registered target is `initial` while ELB registers it, then while it passes its first
 * HealthyThresholdCount checks HealthCheckIntervalSeconds apart (latency profile; API_TargetHealth).
 */
async function initialHealth(sb: SandboxState, tg: string, key: string): Promise<string | null> {
  const at = sb.registeredAt.get(key);
  const p = sb.latency;
  if (at === undefined || (p.registrationMs <= 0 && p.healthCheckScale <= 0)) return null;
  const since = Date.now() - at;
  if (since < p.registrationMs) return '<TargetHealth><State>initial</State><Reason>Elb.RegistrationInProgress</Reason><Description>Target registration is in progress</Description></TargetHealth>';
  const checksMs = (await healthChecks(sb.elb, tg)).checksSec * 1000 * p.healthCheckScale;
  if (since < p.registrationMs + checksMs) return '<TargetHealth><State>initial</State><Reason>Elb.InitialHealthChecking</Reason><Description>Initial health checks in progress</Description></TargetHealth>';
  return null;
}

async function describeTargetHealth(sb: SandboxState, forward: Handler, r: ParsedRequest): Promise<Reply> {
  const reply = await forward(r);
  if (reply.status !== 200) return reply;
  const tg = r.form?.get('TargetGroupArn') ?? '';
  const xml = reply.body.toString();
  const members = [...xml.matchAll(/<member>([\s\S]*?)<\/member>/g)];
  let out = xml;
  const seen = new Set<string>();
  for (const m of members) {
    const block = m[1] ?? '';
    const id = /<Target>[\s\S]*?<Id>([^<]+)<\/Id>/.exec(block)?.[1];
    if (!id) continue;
    const port = /<Target>[\s\S]*?<Port>([^<]+)<\/Port>/.exec(block)?.[1] ?? '';
    const key = `${tg}|${id}|${port}`;
    seen.add(key);
    let health: string;
    if ((sb.draining.get(key) ?? 0) > Date.now()) {
      health = DRAINING;
    } else {
      // Deregistered targets keep moto's answer (unused); only registered ones follow /readyz.
      const motoState = /<TargetHealth>[\s\S]*?<State>([^<]+)<\/State>/.exec(block)?.[1];
      if (motoState === 'unused' || motoState === 'draining') continue;
      const initial = await initialHealth(sb, tg, key);
      if (initial) {
        out = out.replace(`<member>${block}</member>`, `<member>${block.replace(/<TargetHealth>[\s\S]*?<\/TargetHealth>/, initial)}</member>`);
        continue;
      }
      const host = sb.hosts.get(id);
      const healthy = host ? await fetch(host.apiserver.readyzUrl, { signal: AbortSignal.timeout(1500) }).then((x) => x.ok, () => false) : false;
      health = healthy
        ? '<TargetHealth><State>healthy</State></TargetHealth>'
        : '<TargetHealth><State>unhealthy</State><Reason>Target.FailedHealthChecks</Reason><Description>Health checks failed (sandbox: apiserver /readyz not OK)</Description></TargetHealth>';
    }
    const replaced = block.replace(/<TargetHealth>[\s\S]*?<\/TargetHealth>/, health);
    out = out.replace(`<member>${block}</member>`, `<member>${replaced}</member>`);
  }
  // An unfiltered answer lists draining targets too (moto has already dropped them).
  if (!r.form?.has('Targets.member.1.Id')) {
    const extra = [...sb.draining].filter(([key, until]) => key.startsWith(`${tg}|`) && until > Date.now() && !seen.has(key)).map(([key]) => {
      const [, id, port] = key.split('|');
      return `<member><Target><Id>${id}</Id>${port ? `<Port>${port}</Port>` : ''}</Target><HealthCheckPort>traffic-port</HealthCheckPort>${DRAINING}</member>`;
    }).join('');
    if (extra) {
      out = /<TargetHealthDescriptions\s*\/>/.test(out)
        ? out.replace(/<TargetHealthDescriptions\s*\/>/, `<TargetHealthDescriptions>${extra}</TargetHealthDescriptions>`)
        : out.replace('</TargetHealthDescriptions>', `${extra}</TargetHealthDescriptions>`);
    }
  }
  return { ...reply, body: out };
}
