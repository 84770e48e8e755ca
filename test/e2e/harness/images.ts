/**
 * Container images the Nodes run. There is no registry here: each image is a docker-archive
 * tar built by scripts/testenv/build-node-images.sh and imported into every Node's
 * containerd, and Pods use `imagePullPolicy: IfNotPresent` or `Never`.
 */
import { join } from 'node:path';
import { TESTENV_DIR } from './layout.ts';
import type { KubeNode } from './node.ts';

export interface ImageArchive {
  /** The reference Pods name. */
  reference: string;
  file: string;
}

const IMAGES_DIR = join(TESTENV_DIR, 'images');

/** The sandbox ("pause") image, compiled from k8s.io/kubernetes' build/pause/linux/pause.c. */
export const PAUSE_IMAGE: ImageArchive = {
  reference: 'blobcache.local/e2e/pause:3.10.1',
  file: join(IMAGES_DIR, 'pause-3.10.1.tar'),
};

/**
 * busybox (sh, wget, nc, nslookup, httpd), curl and redis-cli: traffic from inside the
 * cluster. Its entrypoint is /bin/sh.
 */
export const CLIENT_IMAGE: ImageArchive = {
  reference: 'blobcache.local/e2e/client:1',
  file: join(IMAGES_DIR, 'client-1.tar'),
};

export const NODE_IMAGES: readonly ImageArchive[] = [PAUSE_IMAGE, CLIENT_IMAGE];

export async function importImages(node: KubeNode, images: readonly ImageArchive[]): Promise<void> {
  for (const image of images) await node.ctr('images', 'import', image.file);
}
