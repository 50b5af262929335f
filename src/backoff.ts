import { setTimeout as sleep } from 'node:timers/promises'

export interface BackoffOptions {
  /** First wait. */
  initialMs: number
  /** Longest wait (the doubling stops here). */
  maxMs: number
  /** Each wait is multiplied by a factor in [1 - jitter, 1 + jitter] (0: none), so many clients do not retry in step. */
  jitter?: number
}

/**
 * Capped exponential backoff: the one policy keatrail waits by between attempts (store writes,
 * journalctl restarts, Kea polls, webhooks). next() gives the wait before the next attempt and
 * doubles it; reset() after a success.
 */
export class Backoff {
  private wait: number

  constructor (private readonly opts: BackoffOptions) {
    this.wait = opts.initialMs
  }

  next (): number {
    const base = this.wait
    this.wait = Math.min(this.wait * 2, this.opts.maxMs)
    const j = this.opts.jitter ?? 0
    return j === 0 ? base : Math.round(base * (1 - j + Math.random() * 2 * j))
  }

  reset (): void {
    this.wait = this.opts.initialMs
  }

  /** Waits next(), ending early (without error) when `signal` aborts; resolves to the wait. */
  async sleep (signal?: AbortSignal): Promise<number> {
    const ms = this.next()
    await sleep(ms, undefined, signal === undefined ? undefined : { signal }).catch(() => {})
    return ms
  }
}

export interface RetryOptions extends BackoffOptions {
  /** Further attempts after the first failure; unset: until it succeeds or `signal` aborts. */
  retries?: number
  signal?: AbortSignal
  /** Hears each failure that will be retried, with the wait before the next attempt. */
  onRetry?: (err: unknown, attempt: number, waitMs: number) => void
  /** Errors no retry can cure (an operator's mistake): thrown at once. */
  permanent?: (err: unknown) => boolean
}

/** Runs `fn` until it succeeds, retrying with backoff; throws its last error once out of retries or aborted. */
export async function retry<T> (fn: (attempt: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  const backoff = new Backoff(opts)
  const aborted = (): boolean => opts.signal?.aborted === true
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt)
    } catch (err) {
      if (aborted() || (opts.retries !== undefined && attempt > opts.retries) || opts.permanent?.(err) === true) throw err
      const wait = backoff.next()
      opts.onRetry?.(err, attempt, wait)
      await sleep(wait, undefined, opts.signal === undefined ? undefined : { signal: opts.signal }).catch(() => {})
      if (aborted()) throw err
    }
  }
}
