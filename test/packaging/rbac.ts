/**
 * Compares what the operator did (the API server's audit log of its ServiceAccount's
 * requests) with what the chart's RBAC grants, both ways: every request must be granted,
 * and every granted verb on every resource must have been used.
 */
import { readFileSync } from 'node:fs';

export interface AuditEvent {
  auditID: string;
  stage: string;
  verb: string;
  requestURI: string;
  user: { username: string };
  objectRef?: {
    apiGroup?: string;
    resource?: string;
    subresource?: string;
    namespace?: string;
    name?: string;
  };
  responseStatus?: { code?: number };
}

export interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  verbs: string[];
}

/** A role's rules and where they apply: everywhere (ClusterRole) or in one namespace. */
export interface Grant {
  role: string;
  namespace?: string;
  rules: PolicyRule[];
}

/** One API request reduced to what RBAC decides on. */
export interface Use {
  verb: string;
  group: string;
  /** `resource` or `resource/subresource`. */
  resource: string;
  namespace?: string;
  name?: string;
  code?: number;
  uri: string;
}

/** Requests of `username` with a resource (discovery and other non-resource URLs left out). */
export function readAuditLog(path: string, username: string): Use[] {
  const byId = new Map<string, AuditEvent>();
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    const event = JSON.parse(line) as AuditEvent;
    if (event.user.username !== username || event.objectRef?.resource === undefined) continue;
    // A watch logs ResponseStarted, then ResponseComplete when it ends: keep the latest.
    byId.set(event.auditID, event);
  }
  return [...byId.values()].flatMap((event) => {
    const ref = event.objectRef!;
    const use: Use = {
      verb: event.verb,
      group: ref.apiGroup ?? '',
      resource: ref.subresource ? `${ref.resource}/${ref.subresource}` : ref.resource!,
      namespace: ref.namespace,
      name: ref.name,
      code: event.responseStatus?.code,
      uri: event.requestURI,
    };
    // A server-side apply that creates its object (201) is authorized as a patch and,
    // inside the same request, as a create: the log shows only the patch.
    const created = use.verb === 'patch' && use.code === 201;
    return created ? [use, { ...use, verb: 'create' }] : [use];
  });
}

function ruleAllows(rule: PolicyRule, use: Use): boolean {
  const has = (list: string[] | undefined, value: string) =>
    list !== undefined && (list.includes(value) || list.includes('*'));
  if (!has(rule.apiGroups, use.group) || !has(rule.resources, use.resource)) return false;
  if (!has(rule.verbs, use.verb)) return false;
  if (rule.resourceNames === undefined || rule.resourceNames.length === 0) return true;
  return use.name !== undefined && rule.resourceNames.includes(use.name);
}

function grantAllows(grant: Grant, use: Use): boolean {
  if (grant.namespace !== undefined && grant.namespace !== use.namespace) return false;
  return grant.rules.some((rule) => ruleAllows(rule, use));
}

export const describeUse = (use: Use) =>
  `${use.verb} ${use.group === '' ? 'core' : use.group}/${use.resource}` +
  (use.namespace === undefined ? ' (all namespaces)' : ` in ${use.namespace}`) +
  (use.name === undefined ? '' : ` named ${use.name}`);

/** Requests no grant allows (each would be, or was, answered 403). */
export function ungranted(uses: Use[], grants: Grant[]): string[] {
  const missing = uses.filter((use) => !grants.some((grant) => grantAllows(grant, use)));
  return [...new Set(missing.map(describeUse))].sort();
}

/**
 * Granted (verb, group, resource) triples no request used: each rule is expanded into its
 * triples, and a triple counts as used when a request it allows was made.
 */
export function unused(uses: Use[], grants: Grant[]): string[] {
  const idle: string[] = [];
  for (const grant of grants) {
    for (const rule of grant.rules) {
      for (const group of rule.apiGroups ?? []) {
        for (const resource of rule.resources ?? []) {
          for (const verb of rule.verbs) {
            const narrowed: Grant = {
              ...grant,
              rules: [{ ...rule, apiGroups: [group], resources: [resource], verbs: [verb] }],
            };
            if (!uses.some((use) => grantAllows(narrowed, use))) {
              idle.push(`${grant.role}: ${verb} ${group === '' ? 'core' : group}/${resource}`);
            }
          }
        }
      }
    }
  }
  return idle.sort();
}
