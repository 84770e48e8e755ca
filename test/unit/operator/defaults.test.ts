import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { withDefaults } from '../../../operator/src/api/v1alpha1/defaults.generated.ts';
import type { BlobCacheSpec } from '../../../operator/src/api/v1alpha1/types.generated.ts';

describe('withDefaults (generated from the CRD)', () => {
  it('fills in every default of the CRD, and nothing the CRD does not default', () => {
    expect(withDefaults({ store: { s3: { bucket: 'b' } } })).to.deep.equal({
      redis: {
        shards: 3,
        replicasPerShard: 1,
        maxMemory: '1Gi',
        resharding: 'Migrate',
        image: 'blobcache/redis:0.1.0',
      },
      http: { replicas: 2, image: 'blobcache/blobcache:0.1.0', port: 8080, localTierSize: '2Gi' },
      store: { s3: { bucket: 'b', region: 'us-east-1', prefix: 'blobs' } },
      durability: 'WriteBehind',
      topology: { zoneLabelKey: 'topology.kubernetes.io/zone', spread: 'Preferred' },
      backfill: {
        policy: 'OnColdStart',
        maxBytes: '1Gi',
        parallelism: 2,
        ttlSecondsAfterFinished: 86400,
      },
    });
  });

  it('keeps what the spec sets, defaults inside optional objects, and changes nothing given', () => {
    const spec: BlobCacheSpec = {
      redis: { shards: 5 },
      http: { autoscaling: { minReplicas: 2, maxReplicas: 4 } },
      store: { s3: { bucket: 'b', region: 'eu-west-1' } },
    };
    const copy = structuredClone(spec);
    const result = withDefaults(spec);
    expect(result.redis.shards).to.equal(5);
    expect(result.store.s3.region).to.equal('eu-west-1');
    expect(result.http.autoscaling?.targetCPUUtilizationPercentage).to.equal(70);
    expect(spec).to.deep.equal(copy);
  });

  it('has the same values as the CRD (no default is written anywhere else)', () => {
    const crd = parse(
      readFileSync(new URL('../../../crds/blobcache.io_blobcaches.yaml', import.meta.url), 'utf8'),
    ) as {
      spec: { versions: { schema: { openAPIV3Schema: { properties: { spec: object } } } }[] };
    };
    const schema = crd.spec.versions[0]!.schema.openAPIV3Schema.properties.spec;
    const defaults = withDefaults({ store: { s3: { bucket: 'b' } } }) as unknown as Record<
      string,
      Record<string, unknown>
    >;
    const props = (
      schema as {
        properties: Record<string, { properties?: Record<string, { default?: unknown }> }>;
      }
    ).properties;
    for (const [section, sectionSchema] of Object.entries(props)) {
      for (const [field, fieldSchema] of Object.entries(sectionSchema.properties ?? {})) {
        if (fieldSchema.default !== undefined)
          expect(defaults[section]?.[field], `${section}.${field}`).to.deep.equal(
            fieldSchema.default,
          );
      }
    }
  });
});
