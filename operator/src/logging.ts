import winston from 'winston';

/**
 * JSON lines on stdout with an ISO timestamp, like the data plane's logs (the operator keeps
 * its own few lines rather than importing across: it must not depend on dataplane/).
 */
export function createLogger(options: { level: string; silent?: boolean }): winston.Logger {
  return winston.createLogger({
    level: options.level,
    silent: options.silent ?? false,
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    defaultMeta: { service: 'blobcache-operator' },
    transports: [new winston.transports.Console()],
  });
}
