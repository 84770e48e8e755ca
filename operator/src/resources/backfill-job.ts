import type { V1Job } from '@kubernetes/client-node';
import { createHash } from 'node:crypto';
import type { DefaultedBlobCache } from '../api/v1alpha1/defaults.generated.ts';
import { DATA_DIR, tierSecretsEnv } from './http.ts';
import { metadataFor } from './labels.ts';
import { names } from './names.ts';
import { memoryBytes } from './redis.ts';

/** The data-plane image's backfill entry point (its io.blobcache.entrypoint.backfill label). */
export const BACKFILL_COMMAND = [
  'node',
  '--max-semi-space-size=2',
  'dist/dataplane/src/commands/backfill.js',
];

/** On a backfill Job: the incarnation (Redis data set) it warms. */
export const INCARNATION_ANNOTATION = 'blobcache.io/incarnation';

/**
 * On a BlobCache: any new value asks for the backfill of the current data set to run again
 * (after a failure, or after backfill.policy was turned on); on a Job, the value it answers.
 */
export const RERUN_ANNOTATION = 'blobcache.io/backfill-rerun';

/** Attempts per partition before the Job counts as failed. */
const ATTEMPTS_PER_PARTITION = 3;

/**
 * The backfill Job's name: the BlobCache's, and a digest of the incarnation (and of the
 * rerun annotation's value it answers, for a rerun), so each run gets its own Job and a
 * second reconcile finds the one it made. At most 43 + 10 + 6 = 59 characters, so
 * `<job>-<index>` (the pods' hostnames) fit 63.
 */
export function backfillJobName(cache: string, incarnation: string, rerun?: string): string {
  const hash = createHash('sha256').update(incarnation);
  if (rerun !== undefined) hash.update(`\n${rerun}`);
  return names.backfillJob(cache, hash.digest('hex').slice(0, 6));
}

/**
 * The indexed Job that warms a cold Redis data set: `parallelism` pods, each the backfill
 * command of the data-plane image on its share of the keys (JOB_COMPLETION_INDEX), with the
 * HTTP pods' configuration and Secrets. Created once per incarnation (and per rerun asked
 * for) and never changed (a Job's pod template is immutable): a later spec change applies
 * to the next one.
 */
export function backfillJob(cache: DefaultedBlobCache, incarnation: string, rerun?: string): V1Job {
  const { backfill, http } = cache.spec;
  const name = cache.metadata.name!;
  const jobName = backfillJobName(name, incarnation, rerun);
  const metadata = metadataFor(cache, jobName, 'backfill');
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      ...metadata,
      annotations: {
        [INCARNATION_ANNOTATION]: incarnation,
        ...(rerun === undefined ? {} : { [RERUN_ANNOTATION]: rerun }),
      },
    },
    spec: {
      completionMode: 'Indexed',
      completions: backfill.parallelism,
      parallelism: backfill.parallelism,
      backoffLimitPerIndex: ATTEMPTS_PER_PARTITION - 1,
      template: {
        metadata: { labels: metadataFor(cache, name, 'backfill').labels },
        spec: {
          restartPolicy: 'Never',
          securityContext: {
            runAsNonRoot: true,
            runAsUser: 1000,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          containers: [
            {
              name: 'backfill',
              image: http.image,
              command: BACKFILL_COMMAND,
              envFrom: [{ configMapRef: { name: names.config(name) } }],
              env: [
                {
                  name: 'BLOBCACHE_BACKFILL_MAX_BYTES',
                  value: String(memoryBytes(backfill.maxBytes)),
                },
                { name: 'BLOBCACHE_BACKFILL_PARTITIONS', value: String(backfill.parallelism) },
                // Tags the pods' progress reports: those of an earlier run are not this one's.
                { name: 'BLOBCACHE_BACKFILL_RUN', value: jobName },
                ...tierSecretsEnv(cache),
              ],
              resources: http.resources,
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'] },
              },
              // The command writes nothing, but the data plane's settings name a data
              // directory; give it an empty one.
              volumeMounts: [{ name: 'data', mountPath: DATA_DIR }],
            },
          ],
          volumes: [{ name: 'data', emptyDir: {} }],
        },
      },
    },
  };
}
