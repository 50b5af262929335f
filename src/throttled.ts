/** How long one line per kind of trouble stands for the same trouble happening again. */
const LOG_EVERY_MS = 10_000

/**
 * Logs the first occurrence at once, then at most one line per LOG_EVERY_MS saying how many
 * more there were: trouble repeating thousands of times a second (refused connections, a
 * full disk) must not become as many log lines.
 */
export class Throttled {
  private count = 0
  private fields: Record<string, unknown> = {}
  private timer: NodeJS.Timeout | undefined
  constructor (private readonly write: (count: number, fields: Record<string, unknown>) => void) {}

  hit (fields: Record<string, unknown>): void {
    this.count++
    this.fields = fields
    if (this.timer === undefined) this.flush()
  }

  private flush (): void {
    if (this.count === 0) { this.timer = undefined; return }
    this.write(this.count, this.fields)
    this.count = 0
    this.timer = setTimeout(() => this.flush(), LOG_EVERY_MS)
    this.timer.unref()
  }

  stop (): void {
    clearTimeout(this.timer)
    this.timer = undefined
    if (this.count > 0) this.write(this.count, this.fields)
    this.count = 0
  }
}
