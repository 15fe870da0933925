/**
 * ELBv2 target health, which moto reports healthy as soon as a target is registered:
 * DescribeTargetHealth keeps moto's answer but sets each registered target's state from its
 * host's apiserver /readyz.
 */
import type { Handler, ParsedRequest, Reply, Routes } from '../protocol';
import type { SandboxState } from './state';

export function elbv2Routes(sb: SandboxState, forward: Handler): Routes {
  return {
    'elasticloadbalancing:DescribeTargetHealth': (r) => describeTargetHealth(sb, forward, r),
  };
}

async function describeTargetHealth(sb: SandboxState, forward: Handler, r: ParsedRequest): Promise<Reply> {
  const reply = await forward(r);
  if (reply.status !== 200) return reply;
  const xml = reply.body.toString();
  const members = [...xml.matchAll(/<member>([\s\S]*?)<\/member>/g)];
  let out = xml;
  for (const m of members) {
    const block = m[1] ?? '';
    const id = /<Target>[\s\S]*?<Id>([^<]+)<\/Id>/.exec(block)?.[1];
    if (!id) continue;
    // Deregistered targets keep moto's answer (unused / draining); only registered ones follow /readyz.
    const motoState = /<TargetHealth>[\s\S]*?<State>([^<]+)<\/State>/.exec(block)?.[1];
    if (motoState === 'unused' || motoState === 'draining') continue;
    const host = sb.hosts.get(id);
    const healthy = host ? await fetch(host.apiserver.readyzUrl, { signal: AbortSignal.timeout(1500) }).then((x) => x.ok, () => false) : false;
    const health = healthy
      ? '<TargetHealth><State>healthy</State></TargetHealth>'
      : '<TargetHealth><State>unhealthy</State><Reason>Target.FailedHealthChecks</Reason><Description>Health checks failed (sandbox: apiserver /readyz not OK)</Description></TargetHealth>';
    const replaced = block.replace(/<TargetHealth>[\s\S]*?<\/TargetHealth>/, health);
    out = out.replace(`<member>${block}</member>`, `<member>${replaced}</member>`);
  }
  return { ...reply, body: out };
}
