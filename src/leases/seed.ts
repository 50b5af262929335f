import { sameClient } from './derive.js'
import type { LeaseInterval, LeaseStore } from './types.js'

/**
 * Stores intervals from Kea's own lease state (memfile CSV, lease*-get-page) for the leases
 * the logs do not show; those the logs already show are only counted as confirmed.
 */
export async function seedKeaState (leases: LeaseStore, intervals: readonly LeaseInterval[], scope: string): Promise<{ created: number, confirmed: number }> {
  const fresh: LeaseInterval[] = []
  let confirmed = 0
  for (const iv of intervals) {
    const known = await leases.intervals(iv.type === 'IA_PD' ? { prefix: iv.lease, scope } : { address: iv.lease, scope })
    const seen = known.some((k) => k.origin === 'log' && sameClient(k, iv) && (k.start ?? 0) < (iv.end ?? Infinity) && (k.end ?? Infinity) > (iv.start ?? 0))
    if (seen) confirmed++
    else fresh.push(iv)
  }
  return { created: await leases.writeKeaState(fresh), confirmed }
}
