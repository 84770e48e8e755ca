import {
  CoreV1Api,
  CustomObjectsApi,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { FIELD_MANAGER } from '../resources/names.ts';

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string;
}

/** The narrow slice of the Kubernetes API the operator uses (an adapter hides the client). */
export interface KubeClient {
  /** Server-side apply with the operator's one field manager (conflicts forced). */
  apply<T extends KubernetesObject>(object: T): Promise<T>;
  /** The object, or null when it does not exist. */
  read<T extends KubernetesObject>(ref: ObjectRef): Promise<T | null>;
  /** Creates the object; false when it already exists. */
  createIfAbsent(object: KubernetesObject): Promise<boolean>;
  /** Deletes the object; false when it did not exist. */
  delete(ref: ObjectRef): Promise<boolean>;
  /** Replaces `.status` of a custom resource (the status subresource). */
  patchStatus(ref: ObjectRef & { plural: string }, status: object): Promise<void>;
  /** Records a Kubernetes Event about `object` (what `kubectl describe` shows). */
  recordEvent(
    object: KubernetesObject,
    event: { type: 'Normal' | 'Warning'; reason: string; message: string },
  ): Promise<void>;
}

/** The HTTP status of a failed API call (client-node's ApiException carries it as `code`). */
export function statusCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

function asObject(ref: ObjectRef): KubernetesObject {
  return {
    apiVersion: ref.apiVersion,
    kind: ref.kind,
    metadata: { name: ref.name, namespace: ref.namespace },
  };
}

export function makeKubeClient(config: KubeConfig): KubeClient {
  const objects = KubernetesObjectApi.makeApiClient(config);
  const custom = config.makeApiClient(CustomObjectsApi);
  const core = config.makeApiClient(CoreV1Api);
  return {
    async apply(object) {
      return objects.patch(
        object,
        undefined,
        undefined,
        FIELD_MANAGER,
        true,
        PatchStrategy.ServerSideApply,
      );
    },
    async read<T extends KubernetesObject>(ref: ObjectRef) {
      try {
        return await objects.read<T>(
          asObject(ref) as T & { metadata: { name: string; namespace: string } },
        );
      } catch (error) {
        if (statusCode(error) === 404) return null;
        throw error;
      }
    },
    async createIfAbsent(object) {
      try {
        await objects.create(object);
        return true;
      } catch (error) {
        if (statusCode(error) === 409) return false;
        throw error;
      }
    },
    async delete(ref) {
      try {
        await objects.delete(asObject(ref));
        return true;
      } catch (error) {
        if (statusCode(error) === 404) return false;
        throw error;
      }
    },
    async recordEvent(object, event) {
      const { name, namespace, uid } = object.metadata ?? {};
      const now = new Date();
      await core.createNamespacedEvent({
        namespace: namespace!,
        body: {
          metadata: { generateName: `${name}.`, namespace },
          involvedObject: {
            apiVersion: object.apiVersion,
            kind: object.kind,
            name,
            namespace,
            uid,
          },
          type: event.type,
          reason: event.reason,
          message: event.message,
          source: { component: FIELD_MANAGER },
          reportingComponent: FIELD_MANAGER,
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      });
    },
    async patchStatus(ref, status) {
      const [group, version] = ref.apiVersion.split('/') as [string, string];
      await custom.patchNamespacedCustomObjectStatus(
        {
          group,
          version,
          namespace: ref.namespace,
          plural: ref.plural,
          name: ref.name,
          body: { status },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    },
  };
}
