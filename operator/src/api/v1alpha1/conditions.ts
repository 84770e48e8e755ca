import type { BlobCacheStatus } from './types.generated.ts';

export const ConditionType = {
  Ready: 'Ready',
  Progressing: 'Progressing',
  Degraded: 'Degraded',
  SlotsCovered: 'SlotsCovered',
  ZoneSpread: 'ZoneSpread',
  Warm: 'Warm',
} as const;

export type Condition = NonNullable<BlobCacheStatus['conditions']>[number];

/** A status timestamp as Kubernetes writes them (RFC 3339, whole seconds). */
export function timestamp(time: Date): string {
  return time.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Sets a condition, keeping its lastTransitionTime when the status did not change, so that
 * an unchanged world writes an identical status (a second reconcile changes nothing).
 */
export function setCondition(
  existing: readonly Condition[] | undefined,
  next: Omit<Condition, 'lastTransitionTime'>,
  now: Date,
): Condition[] {
  const previous = existing?.find((condition) => condition.type === next.type);
  const lastTransitionTime =
    previous !== undefined &&
    previous.status === next.status &&
    previous.lastTransitionTime !== undefined
      ? previous.lastTransitionTime
      : timestamp(now);
  return [
    ...(existing ?? []).filter((condition) => condition.type !== next.type),
    { ...next, lastTransitionTime },
  ];
}
