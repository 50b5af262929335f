import { sameClient } from './derive.js'
import type { LeaseInterval, LeaseStore } from './types.js'

/**
 * Stores intervals from Kea's own lease state (memfile CSV, lease*-get-page) for the leases
 * the logs do not show; those the logs already show are only counted as confirmed.
 */
export async function seedKeaState (leases: LeaseStore, intervals: readonly LeaseInterval[], scope: string): Promise<{ created: number, confirmed: number }> {
  const fresh: LeaseInterval[] = []
  let confirmed = 0
  for (let i = 0; i < intervals.length; i += SEED_READ) {
    const chunk = intervals.slice(i, i + SEED_READ)
    const qs = chunk.map((iv) => iv.type === 'IA_PD' ? { prefix: iv.lease, scope } : { address: iv.lease, scope })
    let known: LeaseInterval[][]
    if (leases.intervalsMany !== undefined) {
      known = await leases.intervalsMany(qs)
    } else {
      // One at a time: a lease state of 100,000 leases must not be 100,000 searches at once.
      known = []
      for (const q of qs) known.push(await leases.intervals(q))
    }
    chunk.forEach((iv, j) => {
      const seen = (known[j] ?? []).some((k) => k.origin === 'log' && sameClient(k, iv) && (k.start ?? 0) < (iv.end ?? Infinity) && (k.end ?? Infinity) > (iv.start ?? 0))
      if (seen) confirmed++
      else fresh.push(iv)
    })
  }
  return { created: await leases.writeKeaState(fresh), confirmed }
}

/**
 * Leases whose history one read asks for: one reader worker round trip each (a read per lease
 * took twice as long as reading on the store's connection, and a queue place each), few enough
 * that a read stays well within the readers' deadline (~0.1 ms a lease).
 */
const SEED_READ = 500
