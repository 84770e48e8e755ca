import winston from 'winston';

export interface LoggerOptions {
  level: string;
  /** Where the JSON lines go. @default process.stdout via the console transport */
  silent?: boolean;
}

/** JSON lines on stdout with an ISO timestamp; fields are passed as the second argument. */
export function createLogger(options: LoggerOptions): winston.Logger {
  return winston.createLogger({
    level: options.level,
    silent: options.silent ?? false,
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    defaultMeta: { service: 'blobcache-dataplane' },
    transports: [new winston.transports.Console()],
  });
}
