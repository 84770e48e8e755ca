/** skaffold.yaml, read once (its tests, and the install test that applies its manifests). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { REPO_ROOT } from '../harness/dataplane.ts';

interface Artifact {
  image: string;
  context: string;
  docker?: { dockerfile: string; target: string };
  custom?: { buildCommand: string; dependencies: { paths: string[] } };
}
interface SkaffoldConfig {
  apiVersion: string;
  kind: string;
  build: { local: { push: boolean }; artifacts: Artifact[] };
  manifests: { rawYaml: string[] };
  resourceSelector: { allow: { groupKind: string; image: string[] }[] };
  deploy: {
    helm: {
      releases: {
        name: string;
        chartPath: string;
        namespace: string;
        setValueTemplates: Record<string, string>;
      }[];
    };
  };
  profiles: { name: string; build: { local: { push: boolean }; artifacts: Artifact[] } }[];
}

export const SKAFFOLD = parse(
  readFileSync(join(REPO_ROOT, 'skaffold.yaml'), 'utf8'),
) as SkaffoldConfig;
