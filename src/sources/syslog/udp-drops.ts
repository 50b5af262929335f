import { readdirSync, readFileSync, readlinkSync } from 'node:fs'

/**
 * Datagrams the kernel dropped because this process's UDP socket's receive buffer was full.
 * Node cannot see them (no SO_RXQ_OVFL), but Linux counts them per socket in the last column
 * of /proc/net/udp{,6}. Without this, a flood would lose datagrams that no counter shows.
 * Elsewhere (no /proc) it reads 0.
 */
export class UdpKernelDrops {
  private inodes: Set<string> | undefined
  private last = 0

  constructor (private readonly port: number) {}

  /** Drops since the previous call (the first call counts from the socket's creation). */
  delta (): number {
    const now = this.read()
    if (now === undefined) return 0
    const d = now - this.last
    this.last = now
    return d > 0 ? d : 0
  }

  private read (): number | undefined {
    try {
      // Only this process's own sockets: another socket may be bound to the same port (another
      // address, or SO_REUSEPORT elsewhere).
      this.inodes ??= ownSocketInodes()
      const hexPort = this.port.toString(16).toUpperCase().padStart(4, '0')
      let drops = 0
      for (const table of ['/proc/self/net/udp', '/proc/self/net/udp6']) {
        let text: string
        try { text = readFileSync(table, 'latin1') } catch { continue }
        for (const line of text.split('\n').slice(1)) {
          const cols = line.trim().split(/\s+/)
          if (cols.length < 13 || !(cols[1] ?? '').endsWith(`:${hexPort}`) || !this.inodes.has(cols[9] ?? '')) continue
          drops += Number(cols[cols.length - 1])
        }
      }
      return drops
    } catch {
      return undefined
    }
  }
}

function ownSocketInodes (): Set<string> {
  const inodes = new Set<string>()
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))
      if (m !== null) inodes.add(m[1] as string)
    } catch { /* closed meanwhile */ }
  }
  return inodes
}
