/**
 * Everything the operator reads and changes in the Kubernetes API, in one declarative
 * place: the controller's informers are built from WATCHED, the few reads past them are in
 * READS, every write goes through a KubeClient method whose verbs are listed in WRITES, and
 * `rbacRules()` turns them into the least-privilege rules a ClusterRole needs (the Helm
 * chart derives or checks its RBAC from it). Reads are mostly served from the informers'
 * caches, so what is read needs list + watch.
 */
import { API_VERSION, KIND, PLURAL } from '../api/v1alpha1/types.generated.ts';

export interface ResourceType {
  apiVersion: string;
  kind: string;
  /** The resource name in API paths and RBAC rules. */
  plural: string;
}

export const TYPES = {
  BlobCache: { apiVersion: API_VERSION, kind: KIND, plural: PLURAL },
  ConfigMap: { apiVersion: 'v1', kind: 'ConfigMap', plural: 'configmaps' },
  Secret: { apiVersion: 'v1', kind: 'Secret', plural: 'secrets' },
  Service: { apiVersion: 'v1', kind: 'Service', plural: 'services' },
  Pod: { apiVersion: 'v1', kind: 'Pod', plural: 'pods' },
  Node: { apiVersion: 'v1', kind: 'Node', plural: 'nodes' },
  Event: { apiVersion: 'v1', kind: 'Event', plural: 'events' },
  StatefulSet: { apiVersion: 'apps/v1', kind: 'StatefulSet', plural: 'statefulsets' },
  Deployment: { apiVersion: 'apps/v1', kind: 'Deployment', plural: 'deployments' },
  PodDisruptionBudget: {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    plural: 'poddisruptionbudgets',
  },
  HorizontalPodAutoscaler: {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    plural: 'horizontalpodautoscalers',
  },
  Lease: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', plural: 'leases' },
} as const satisfies Record<string, ResourceType>;

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'blobcache-operator';
const MANAGED = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;

export interface WatchedType {
  type: ResourceType;
  /** Only objects matching this selector are cached (and need to be). */
  labelSelector?: string;
}

/**
 * What the operator caches with an informer, cluster-wide. Secrets are cached whole: the
 * pods consume Secrets the user names (API tokens, S3 credentials), and a change to one of
 * them must roll the pods.
 */
export const WATCHED: readonly WatchedType[] = [
  { type: TYPES.BlobCache },
  { type: TYPES.Secret },
  { type: TYPES.ConfigMap, labelSelector: MANAGED },
  { type: TYPES.Service, labelSelector: MANAGED },
  { type: TYPES.StatefulSet, labelSelector: MANAGED },
  { type: TYPES.Deployment, labelSelector: MANAGED },
  { type: TYPES.PodDisruptionBudget, labelSelector: MANAGED },
  { type: TYPES.HorizontalPodAutoscaler, labelSelector: MANAGED },
  { type: TYPES.Pod, labelSelector: `${MANAGED},app.kubernetes.io/component=redis` },
];

/** Kinds of owned children: applied with server-side apply, pruned when no longer wanted. */
export const OWNED: readonly ResourceType[] = [
  TYPES.ConfigMap,
  TYPES.Service,
  TYPES.StatefulSet,
  TYPES.Deployment,
  TYPES.PodDisruptionBudget,
  TYPES.HorizontalPodAutoscaler,
];

export interface ReadAccess {
  type: ResourceType;
  verbs: readonly string[];
  why: string;
}

/**
 * Reads that bypass the informers' caches. Nodes are read one by one, by name, for the zone
 * label of the node a Redis pod runs on: caching every Node of a large cluster (each with
 * its image list and status) would cost far more memory than the few reads it saves.
 */
export const READS: readonly ReadAccess[] = [
  { type: TYPES.Node, verbs: ['get'], why: 'the zone of the node each Redis pod runs on' },
];

export interface WriteAccess {
  type: ResourceType;
  subresource?: string;
  verbs: readonly string[];
  /** Only in the operator's own namespace (a Role there, not a ClusterRole). */
  ownNamespaceOnly?: boolean;
  why: string;
}

/** Server-side apply of an object that does not exist yet is authorized as create. */
const APPLY = ['create', 'patch'] as const;

export const WRITES: readonly WriteAccess[] = [
  ...OWNED.map((type) => ({
    type,
    verbs: [...APPLY, 'delete'],
    why: 'server-side apply of owned children; pruning',
  })),
  { type: TYPES.Secret, verbs: ['create', 'delete'], why: 'generated Secrets, made once' },
  { type: TYPES.BlobCache, subresource: 'status', verbs: ['patch'], why: 'status' },
  { type: TYPES.Event, verbs: ['create'], why: 'Events about a BlobCache' },
  {
    type: TYPES.Lease,
    verbs: ['get', 'create', 'update'],
    ownNamespaceOnly: true,
    why: 'leader election',
  },
];

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

const groupOf = (type: ResourceType): string =>
  type.apiVersion.includes('/') ? type.apiVersion.split('/')[0]! : '';

/**
 * The RBAC rules the operator needs: `cluster` for a ClusterRole, `ownNamespace` for a Role
 * in the namespace it runs in. One rule per resource, verbs sorted.
 */
export function rbacRules(): { cluster: PolicyRule[]; ownNamespace: PolicyRule[] } {
  const collect = (entries: { key: string; group: string; verbs: readonly string[] }[]) => {
    const rules = new Map<string, PolicyRule>();
    for (const { key, group, verbs } of entries) {
      const rule = rules.get(key) ?? { apiGroups: [group], resources: [key], verbs: [] };
      rule.verbs = [...new Set([...rule.verbs, ...verbs])].sort();
      rules.set(key, rule);
    }
    return [...rules.values()];
  };
  const resource = (type: ResourceType, subresource?: string) =>
    subresource === undefined ? type.plural : `${type.plural}/${subresource}`;
  return {
    cluster: collect([
      ...WATCHED.map(({ type }) => ({
        key: type.plural,
        group: groupOf(type),
        verbs: ['list', 'watch'],
      })),
      ...READS.map((read) => ({
        key: read.type.plural,
        group: groupOf(read.type),
        verbs: read.verbs,
      })),
      ...WRITES.filter((write) => write.ownNamespaceOnly !== true).map((write) => ({
        key: resource(write.type, write.subresource),
        group: groupOf(write.type),
        verbs: write.verbs,
      })),
    ]),
    ownNamespace: collect(
      WRITES.filter((write) => write.ownNamespaceOnly === true).map((write) => ({
        key: resource(write.type, write.subresource),
        group: groupOf(write.type),
        verbs: write.verbs,
      })),
    ),
  };
}

/** The URL path of a collection: /api/v1/namespaces/ns/pods, /apis/apps/v1/deployments. */
export function collectionPath(type: ResourceType, namespace?: string): string {
  const prefix = type.apiVersion.includes('/')
    ? `/apis/${type.apiVersion}`
    : `/api/${type.apiVersion}`;
  return `${prefix}${namespace === undefined ? '' : `/namespaces/${namespace}`}/${type.plural}`;
}
