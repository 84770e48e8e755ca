import winston from 'winston';

/** A logger that drops everything, for code under test that wants one. */
export const silentLogger = winston.createLogger({
  silent: true,
  transports: [new winston.transports.Console()],
});
