import type {
  V1ConfigMap,
  V1Deployment,
  V1EnvVar,
  V1PodDisruptionBudget,
  V1Service,
  V2HorizontalPodAutoscaler,
} from '@kubernetes/client-node';
import type { DefaultedBlobCache } from '../api/v1alpha1/defaults.generated.ts';
import { metadataFor, selectorLabels } from './labels.ts';
import { tokensSecretName } from './checksum.ts';
import { CONFIG_CHECKSUM_ANNOTATION, names } from './names.ts';
import { memoryBytes, redisNodeAddresses, zoneSpread } from './redis.ts';

export const DATA_DIR = '/var/lib/blobcache';
/** The local tier's own emptyDir, so its size limit bounds it alone (not the spool). */
export const LOCAL_TIER_DIR = '/var/lib/blobcache-local';
/** Room in the local tier's emptyDir beyond its bound: file-system blocks, temp names. */
const LOCAL_TIER_HEADROOM_BYTES = 64 * 1024 * 1024;

/** The data plane's settings (everything but secrets), as environment variables. */
export function httpConfigMap(cache: DefaultedBlobCache): V1ConfigMap {
  const { http, store, durability } = cache.spec;
  const s3 = store.s3;
  const data: Record<string, string> = {
    BLOBCACHE_HOST: '0.0.0.0',
    PORT: String(http.port),
    BLOBCACHE_DATA_DIR: DATA_DIR,
    BLOBCACHE_REDIS_NODES: redisNodeAddresses(cache).join(','),
    BLOBCACHE_DURABILITY: durability,
    BLOBCACHE_S3_BUCKET: s3.bucket,
    BLOBCACHE_S3_PREFIX: s3.prefix,
    AWS_REGION: s3.region,
  };
  const localTierBytes = memoryBytes(http.localTierSize);
  data.BLOBCACHE_LOCAL_TIER_BYTES = String(localTierBytes);
  if (localTierBytes > 0) data.BLOBCACHE_LOCAL_TIER_DIR = LOCAL_TIER_DIR;
  if (s3.endpoint !== undefined) data.BLOBCACHE_S3_ENDPOINT = s3.endpoint;
  if (s3.forcePathStyle !== undefined)
    data.BLOBCACHE_S3_FORCE_PATH_STYLE = String(s3.forcePathStyle);
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: metadataFor(cache, names.config(cache.metadata.name!), 'http'),
    data,
  };
}

function secretEnv(variable: string, secret: string, key: string, optional = false): V1EnvVar {
  return { name: variable, valueFrom: { secretKeyRef: { name: secret, key, optional } } };
}

/**
 * What the data plane needs from Secrets to reach its tiers: the Redis password and, when
 * named, the S3 credentials (the HTTP pods and the backfill Job's both read them).
 */
export function tierSecretsEnv(cache: DefaultedBlobCache): V1EnvVar[] {
  const credentials = cache.spec.store.s3.credentialsSecretName;
  return [
    secretEnv('BLOBCACHE_REDIS_PASSWORD', names.redisSecret(cache.metadata.name!), 'password'),
    ...(credentials === undefined
      ? []
      : [
          secretEnv('AWS_ACCESS_KEY_ID', credentials, 'AWS_ACCESS_KEY_ID'),
          secretEnv('AWS_SECRET_ACCESS_KEY', credentials, 'AWS_SECRET_ACCESS_KEY'),
        ]),
  ];
}

/**
 * The HTTP tier. With autoscaling the replica count is left out entirely: with server-side
 * apply the operator then owns no `spec.replicas`, and never fights the HPA over it.
 * `configChecksum` digests the ConfigMap and Secrets the pods read, so a change rolls them.
 */
export function httpDeployment(cache: DefaultedBlobCache, configChecksum: string): V1Deployment {
  const { http } = cache.spec;
  const name = cache.metadata.name!;
  const port = http.port;
  const tokens = tokensSecretName(cache);
  const localTierBytes = memoryBytes(http.localTierSize);
  // The kubelet evicts a pod whose emptyDir passes its size limit: the data plane keeps the
  // copies within localTierSize, the limit leaves headroom above it.
  const localTier =
    localTierBytes === 0
      ? undefined
      : { name: 'local-tier', sizeLimit: String(localTierBytes + LOCAL_TIER_HEADROOM_BYTES) };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: metadataFor(cache, names.httpDeployment(name), 'http'),
    spec: {
      ...(http.autoscaling === undefined ? { replicas: http.replicas } : {}),
      selector: { matchLabels: selectorLabels(cache, 'http') },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: {
          labels: metadataFor(cache, name, 'http').labels,
          annotations: { [CONFIG_CHECKSUM_ANNOTATION]: configChecksum },
        },
        spec: {
          topologySpreadConstraints: zoneSpread(cache, 'http'),
          terminationGracePeriodSeconds: 40,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: 1000,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          containers: [
            {
              name: 'dataplane',
              image: http.image,
              envFrom: [{ configMapRef: { name: names.config(name) } }],
              env: [
                secretEnv('BLOBCACHE_READ_TOKEN', tokens, 'read-token', true),
                secretEnv('BLOBCACHE_WRITE_TOKEN', tokens, 'write-token', true),
                ...tierSecretsEnv(cache),
              ],
              ports: [{ name: 'http', containerPort: port }],
              readinessProbe: { httpGet: { path: '/readyz', port: 'http' }, periodSeconds: 5 },
              livenessProbe: {
                httpGet: { path: '/healthz', port: 'http' },
                periodSeconds: 10,
                failureThreshold: 6,
              },
              // Endpoints take a moment to drop a terminating pod: keep serving meanwhile.
              lifecycle: { preStop: { sleep: { seconds: 5 } } },
              resources: http.resources,
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'] },
              },
              volumeMounts: [
                { name: 'data', mountPath: DATA_DIR },
                ...(localTier === undefined
                  ? []
                  : [{ name: localTier.name, mountPath: LOCAL_TIER_DIR }]),
              ],
            },
          ],
          volumes: [
            { name: 'data', emptyDir: {} },
            ...(localTier === undefined
              ? []
              : [{ name: localTier.name, emptyDir: { sizeLimit: localTier.sizeLimit } }]),
          ],
        },
      },
    },
  };
}

/** The client Service: http://<name>.<namespace>.svc:<port>. */
export function httpService(cache: DefaultedBlobCache): V1Service {
  const { port } = cache.spec.http;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: metadataFor(cache, names.service(cache.metadata.name!), 'http'),
    spec: {
      selector: selectorLabels(cache, 'http'),
      ports: [{ name: 'http', port, targetPort: 'http' }],
    },
  };
}

export function httpPdb(cache: DefaultedBlobCache): V1PodDisruptionBudget {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: metadataFor(cache, names.httpPdb(cache.metadata.name!), 'http'),
    spec: { maxUnavailable: 1, selector: { matchLabels: selectorLabels(cache, 'http') } },
  };
}

export function httpAutoscaler(cache: DefaultedBlobCache): V2HorizontalPodAutoscaler | null {
  const { autoscaling } = cache.spec.http;
  if (autoscaling === undefined) return null;
  const name = cache.metadata.name!;
  return {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: metadataFor(cache, names.hpa(name), 'http'),
    spec: {
      scaleTargetRef: {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        name: names.httpDeployment(name),
      },
      minReplicas: autoscaling.minReplicas,
      maxReplicas: autoscaling.maxReplicas,
      metrics: [
        {
          type: 'Resource',
          resource: {
            name: 'cpu',
            target: {
              type: 'Utilization',
              averageUtilization: autoscaling.targetCPUUtilizationPercentage,
            },
          },
        },
      ],
    },
  };
}
