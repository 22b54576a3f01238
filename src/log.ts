/**
 * Structured JSON logs on stdout (pino): one line per thing that happened, with the
 * component that did it, so an operator can grep `component=outbox` and read its story.
 */
import pino from 'pino'

export type Logger = pino.Logger

export function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { service: 'parcelcast', pid: process.pid, ...bindings }, timestamp: pino.stdTimeFunctions.isoTime })
}
