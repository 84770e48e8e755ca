import { readFileSync } from 'node:fs';
import { ConfigError, loadConfig, type DataPlaneConfig } from './config.ts';

/**
 * The configuration from an environment (entry points pass `process.env`), including the
 * YAML file it names in `BLOBCACHE_CONFIG_FILE`.
 */
export function configFromEnvironment(env: Record<string, string | undefined>): DataPlaneConfig {
  const fileName = env.BLOBCACHE_CONFIG_FILE;
  let fileText: string | undefined;
  if (fileName !== undefined && fileName !== '') {
    try {
      fileText = readFileSync(fileName, 'utf8');
    } catch (error) {
      throw new ConfigError(
        `BLOBCACHE_CONFIG_FILE: cannot read ${fileName}: ${(error as Error).message}`,
      );
    }
  }
  return loadConfig({ env, fileText, fileName });
}
