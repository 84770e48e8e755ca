import type { V1Secret } from '@kubernetes/client-node';
import { TYPES } from '../../kube/access.ts';
import { generatedSecrets } from '../../resources/secrets.ts';
import { current, objectKey } from '../context.ts';
import type { Phase } from './phase.ts';

/**
 * Generates the Redis password and the API tokens once: an existing Secret is never
 * replaced (its random values would change), so they are created when absent, not applied.
 */
export const secretsPhase: Phase = {
  name: 'secrets',
  async run(ctx) {
    for (const secret of generatedSecrets(ctx.blobCache)) {
      const name = secret.metadata!.name!;
      ctx.wanted.add(objectKey(secret));
      const existing = await current<V1Secret>(ctx, TYPES.Secret, name);
      if (existing !== null) continue;
      const { created, object } = await ctx.kube.createIfAbsent(secret);
      ctx.fresh.set(objectKey(secret), object);
      if (created) {
        ctx.log.info('Created Secret', { name });
        await ctx.event('Normal', 'CreatedSecret', `Generated Secret ${name}`);
      }
    }
    return {};
  },
};
