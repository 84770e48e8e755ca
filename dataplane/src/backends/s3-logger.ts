import type { S3ClientConfig } from '@aws-sdk/client-s3';
import type { Logger } from 'winston';
import { isPreconditionFailed, isS3Miss } from './s3-errors.ts';

/**
 * The AWS SDK's logger, writing to the JSON log. The SDK logs one object per request:
 * at `info` for each command that succeeded (a trace, logged here at debug), at `error` for
 * each that failed. Failures stay errors, except three that are answers rather than
 * failures, logged at debug: a 404 for a blob that is not stored (a miss), a 412 for an
 * upload made only if the object is absent (`If-None-Match: *`) when S3 holds it already,
 * and a request this process aborted itself (a client gone, an upload stopped by a
 * DELETE). Its objects are flattened into fields rather than printed as "[object Object]".
 */
export function s3SdkLogger(logger: Logger): NonNullable<S3ClientConfig['logger']> {
  return {
    debug: (...content: unknown[]) => logger.debug('S3 client debug', fieldsOf(content)),
    info: (...content: unknown[]) => logger.debug('S3 client request', fieldsOf(content)),
    warn: (...content: unknown[]) => logger.warn('S3 client warning', fieldsOf(content)),
    error: (...content: unknown[]) => {
      const fields = fieldsOf(content);
      const errors = content.map((item) => (item as { error?: unknown } | null)?.error);
      if (errors.some(isS3Miss)) {
        logger.debug('S3 answered that an object is not stored', fields);
      } else if (errors.some(isPreconditionFailed)) {
        logger.debug('S3 holds the object already; the upload made only if absent was not', fields);
      } else if (errors.some((error) => (error as Error | undefined)?.name === 'AbortError')) {
        logger.debug('Aborted an S3 request', fields);
      } else {
        logger.error('S3 request failed', fields);
      }
    },
  };
}

/** Fields worth logging from what the SDK passes: never request or response bodies. */
export function fieldsOf(content: readonly unknown[]): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  const text: string[] = [];
  for (const item of content) {
    if (item === null || typeof item !== 'object') {
      text.push(String(item));
      continue;
    }
    if (item instanceof Error) {
      fields.error = `${item.name}: ${item.message}`;
      continue;
    }
    const entry = item as {
      clientName?: string;
      commandName?: string;
      input?: { Bucket?: string; Key?: string };
      error?: { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
      output?: { $metadata?: { httpStatusCode?: number } };
      metadata?: { httpStatusCode?: number; attempts?: number };
    };
    if (entry.commandName !== undefined) fields.command = entry.commandName;
    if (entry.input?.Bucket !== undefined) fields.bucket = entry.input.Bucket;
    if (entry.input?.Key !== undefined) fields.object = entry.input.Key;
    if (entry.error !== undefined) fields.error = `${entry.error.name}: ${entry.error.message}`;
    const status =
      entry.metadata?.httpStatusCode ??
      entry.error?.$metadata?.httpStatusCode ??
      entry.output?.$metadata?.httpStatusCode;
    if (status !== undefined) fields.status = status;
    if (entry.metadata?.attempts !== undefined) fields.attempts = entry.metadata.attempts;
    if (Object.keys(fields).length === 0) text.push(JSON.stringify(item));
  }
  if (text.length > 0) fields.detail = text.join(' ');
  return fields;
}
