/**
 * Least-privilege rules for the packaged CloudFormation template (issue 8), as a checker that
 * returns every violation it finds (so a test can show them all, and prove it catches them):
 *
 * 1. no Allow statement grants a mutating action on `*` without a cluster-tag condition;
 * 2. mutating EC2 / Auto Scaling / ELB / SSM actions on wildcard ARNs carry a condition on the
 *    cluster tag (`aws:ResourceTag/<cluster tag>` or `ssm:resourceTag/<cluster tag>`: the tag
 *    the functions look for, not another one and not unresolved text), except
 *    `ssm:SendCommand` on the `AWS-RunShellScript` document itself;
 * 3. `ssm:SendCommand` on documents names only `AWS-RunShellScript`;
 * 4. no action is a service-wide wildcard (`ec2:*`, `*`);
 * 5. with the stack's served `clusters` given, every such tag condition is `StringEquals` on
 *    exactly those names (a `Null` test would let any tag value — any cluster — through).
 */
type Json = unknown;

export interface Violation {
  role: string;
  rule: 1 | 2 | 3 | 4 | 5;
  action: string;
  resource: string;
  why: string;
}

interface Statement {
  Effect?: string;
  Action?: string | string[];
  Resource?: Json;
  Condition?: Record<string, Record<string, unknown>>;
}

const READ = /^[a-z0-9-]+:(Describe|List|Get|Head|BatchGet|Query|Scan)[A-Za-z]*$/;
const TAGGED_SERVICES = new Set(['ec2', 'autoscaling', 'elasticloadbalancing', 'ssm']);
const RUN_SHELL = /:document\/AWS-RunShellScript$/;

const list = <T>(x: T | T[] | undefined): T[] => (x === undefined ? [] : Array.isArray(x) ? x : [x]);

/** A resource as text: plain strings stay; intrinsic functions are rendered (Fn::Sub keeps its pattern). */
function resourceText(r: Json): string {
  if (typeof r === 'string') return r;
  if (r && typeof r === 'object') {
    const o = r as Record<string, unknown>;
    if ('Fn::Sub' in o) return String(Array.isArray(o['Fn::Sub']) ? (o['Fn::Sub'] as unknown[])[0] : o['Fn::Sub']);
    if ('Ref' in o) return `ref:${String(o.Ref)}`;
    if ('Fn::GetAtt' in o) return `getatt:${list(o['Fn::GetAtt'] as string | string[]).join('.')}`;
    if ('Fn::Join' in o) return ((o['Fn::Join'] as [string, Json[]])[1]).map(resourceText).join((o['Fn::Join'] as [string, Json[]])[0]);
  }
  return JSON.stringify(r);
}

function hasTagCondition(s: Statement, clusterTag: string): boolean {
  const keys = new Set([`aws:ResourceTag/${clusterTag}`, `ssm:resourceTag/${clusterTag}`]);
  return Object.values(s.Condition ?? {}).some((block) => Object.keys(block).some((k) => keys.has(k)));
}

/** Whether every cluster-tag condition of `s` is StringEquals on exactly `clusters`. */
function bindsClusters(s: Statement, clusterTag: string, clusters: readonly string[]): boolean {
  const keys = new Set([`aws:ResourceTag/${clusterTag}`, `ssm:resourceTag/${clusterTag}`]);
  const want = JSON.stringify([...clusters].sort());
  return Object.entries(s.Condition ?? {}).every(([op, block]) => Object.entries(block).every(([k, v]) =>
    !keys.has(k) || (op === 'StringEquals' && JSON.stringify(list(v as string | string[]).slice().sort()) === want)));
}

/**
 * `clusterTag`: the tag key that marks a cluster's resources (the functions' QK_TAG_CLUSTER);
 * `clusters`: the names the stack serves (its `clusters` parameter), when it was given some.
 */
export function checkTemplate(template: { Resources?: Record<string, { Type?: string; Properties?: Record<string, unknown> }> }, clusterTag: string, clusters: readonly string[] = []): Violation[] {
  const out: Violation[] = [];
  for (const [name, res] of Object.entries(template.Resources ?? {})) {
    if (res.Type !== 'AWS::IAM::Role' && res.Type !== 'AWS::IAM::Policy' && res.Type !== 'AWS::IAM::ManagedPolicy') continue;
    const docs = res.Type === 'AWS::IAM::Role'
      ? list(res.Properties?.Policies as Array<{ PolicyDocument: { Statement: Statement[] } }>).map((p) => p.PolicyDocument)
      : [res.Properties?.PolicyDocument as { Statement: Statement[] }];
    for (const doc of docs) {
      for (const s of list(doc?.Statement)) {
        if (s.Effect !== 'Allow') continue;
        const resources = (Array.isArray(s.Resource) ? (s.Resource as Json[]) : [s.Resource]).filter((r) => r !== undefined).map(resourceText);
        for (const action of list(s.Action)) {
          const service = action.split(':')[0] ?? '';
          if (action === '*' || action.endsWith(':*')) out.push({ role: name, rule: 4, action, resource: resources.join(','), why: 'service-wide wildcard action' });
          if (READ.test(action)) continue;
          for (const r of resources) {
            if (r === '*' && !hasTagCondition(s, clusterTag)) out.push({ role: name, rule: 1, action, resource: r, why: 'mutating action on * without a tag condition' });
            if (action === 'ssm:SendCommand' && r.includes(':document/') && !RUN_SHELL.test(r)) out.push({ role: name, rule: 3, action, resource: r, why: 'SendCommand on a document other than AWS-RunShellScript' });
            const wildcard = r.includes('*');
            const exempt = action === 'ssm:SendCommand' && RUN_SHELL.test(r);
            if (TAGGED_SERVICES.has(service) && wildcard && !exempt && !hasTagCondition(s, clusterTag)) {
              out.push({ role: name, rule: 2, action, resource: r, why: 'mutating action on a wildcard ARN without a cluster-tag condition' });
            } else if (clusters.length && hasTagCondition(s, clusterTag) && !bindsClusters(s, clusterTag, clusters)) {
              out.push({ role: name, rule: 5, action, resource: r, why: `cluster-tag condition does not name exactly the served clusters (${clusters.join(', ')})` });
            }
          }
        }
      }
    }
  }
  return out;
}
