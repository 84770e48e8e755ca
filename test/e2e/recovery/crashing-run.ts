/**
 * A run that crashes: brings the cluster up, starts a Pod, prints "up" and waits to be
 * killed (crash-recovery.test.ts sends SIGKILL, so nothing of it is torn down).
 */
import { bringUp, cluster } from '../harness/cluster.ts';
import { clientPod, waitPodReady } from '../harness/scenario.ts';

await bringUp();
await cluster().kubectl.apply(clientPod('default', 'left-behind'));
await waitPodReady('default', 'left-behind');
console.log('up');
setInterval(() => undefined, 60_000);
