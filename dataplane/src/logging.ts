import winston from 'winston';

export interface LoggerOptions {
  level: string;
  /** Where the JSON lines go. @default process.stdout via the console transport */
  silent?: boolean;
  /**
   * `json`: JSON lines (the server). `text`: `<time> <level> <message> <fields as JSON>`, for
   * commands whose output people read (`kubectl logs` of a backfill Job). @default 'json'
   */
  format?: 'json' | 'text';
  /** @default 'blobcache-dataplane' */
  service?: string;
}

const TEXT = winston.format.printf((info) => {
  const { level, message, timestamp, ...fields } = info;
  delete fields.service;
  const rest = Object.keys(fields).length === 0 ? '' : ` ${JSON.stringify(fields)}`;
  return `${String(timestamp)} ${level} ${String(message)}${rest}`;
});

/** Log lines on stdout with an ISO timestamp; fields are passed as the second argument. */
export function createLogger(options: LoggerOptions): winston.Logger {
  return winston.createLogger({
    level: options.level,
    silent: options.silent ?? false,
    format: winston.format.combine(
      winston.format.timestamp(),
      options.format === 'text' ? TEXT : winston.format.json(),
    ),
    defaultMeta: { service: options.service ?? 'blobcache-dataplane' },
    transports: [new winston.transports.Console()],
  });
}
