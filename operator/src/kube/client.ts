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

export interface TypeRef {
  apiVersion: string;
  kind: string;
}

export interface ObjectRef extends TypeRef {
  name: string;
  namespace: string;
}

/**
 * The narrow slice of the Kubernetes API the operator uses (an adapter hides the client).
 * Every write it makes is one of these methods; access.ts lists the verbs they need.
 */
export interface KubeClient {
  /** The object, or null when it does not exist. */
  get<T extends KubernetesObject>(ref: ObjectRef): Promise<T | null>;
  /** The objects of a type in a namespace that carry all of `labels`. */
  list<T extends KubernetesObject>(
    type: TypeRef,
    namespace: string,
    labels: Record<string, string>,
  ): Promise<T[]>;
  /** Server-side apply with the operator's one field manager (conflicts forced). */
  apply<T extends KubernetesObject>(object: T): Promise<T>;
  /** Creates the object unless it exists; either way answers the object as stored. */
  createIfAbsent<T extends KubernetesObject>(object: T): Promise<{ created: boolean; object: T }>;
  /**
   * Deletes the object; false when it did not exist. With `uid`, only that very object
   * (a precondition: a newer object of the same name is left alone).
   */
  delete(ref: ObjectRef, options?: { uid?: string }): Promise<boolean>;
  /** Merges `status` into a custom resource's status subresource. */
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

/** The API server's own message in a failed call's Status body, when there is one. */
export function statusMessage(error: unknown): string {
  const body = (error as { body?: unknown } | null)?.body;
  try {
    const parsed = (typeof body === 'string' ? JSON.parse(body) : body) as { message?: unknown };
    if (typeof parsed?.message === 'string') return parsed.message;
  } catch {
    // not JSON: fall through
  }
  return error instanceof Error ? error.message : String(error);
}

export function labelSelector(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([key, value]) => `${key}=${value}`)
    .join(',');
}

function header(
  ref: ObjectRef,
): KubernetesObject & { metadata: { name: string; namespace: string } } {
  return {
    apiVersion: ref.apiVersion,
    kind: ref.kind,
    metadata: { name: ref.name, namespace: ref.namespace },
  };
}

/** The KubeClient that talks to the API server for everything (no cache). */
export function makeKubeClient(config: KubeConfig): KubeClient {
  const objects = KubernetesObjectApi.makeApiClient(config);
  const custom = config.makeApiClient(CustomObjectsApi);
  const core = config.makeApiClient(CoreV1Api);
  const get = async <T extends KubernetesObject>(ref: ObjectRef): Promise<T | null> => {
    try {
      return await objects.read<T>(header(ref));
    } catch (error) {
      if (statusCode(error) === 404) return null;
      throw error;
    }
  };
  return {
    get,
    async list<T extends KubernetesObject>(
      type: TypeRef,
      namespace: string,
      labels: Record<string, string>,
    ) {
      const list = await objects.list<T>(
        type.apiVersion,
        type.kind,
        namespace,
        undefined,
        undefined,
        undefined,
        undefined,
        labelSelector(labels),
      );
      return list.items;
    },
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
    async createIfAbsent<T extends KubernetesObject>(object: T) {
      try {
        return { created: true, object: await objects.create<T>(object) };
      } catch (error) {
        if (statusCode(error) !== 409) throw error;
        const existing = await get<T>({
          apiVersion: object.apiVersion!,
          kind: object.kind!,
          name: object.metadata!.name!,
          namespace: object.metadata!.namespace!,
        });
        if (existing === null) throw error;
        return { created: false, object: existing };
      }
    },
    async delete(ref, options = {}) {
      try {
        await objects.delete(
          header(ref),
          undefined,
          undefined,
          undefined,
          undefined,
          'Background',
          // With a body the API server reads the options from it alone (the query's are
          // ignored): without the policy here, a Job would be deleted with its kind's
          // default, orphaning its pods.
          {
            propagationPolicy: 'Background',
            ...(options.uid === undefined ? {} : { preconditions: { uid: options.uid } }),
          },
        );
        return true;
      } catch (error) {
        // 409: the precondition failed, the name now belongs to another object.
        if (statusCode(error) === 404 || statusCode(error) === 409) return false;
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
