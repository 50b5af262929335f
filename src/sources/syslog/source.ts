import { createHash } from 'node:crypto'
import { createSocket, type Socket as UdpSocket } from 'node:dgram'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createServer, isIPv4, isIPv6, type Server, type Socket } from 'node:net'
import { createServer as createTlsServer } from 'node:tls'
import { z } from 'zod'
import { SourceStartError, SYSLOG_LOG_CODES, withCause } from '../../errors.js'
import type { InputLine } from '../../parse/lines.js'
import type { KeaEvent } from '../../parse/event.js'
import { RecordParser } from '../../parse/parser.js'
import { compilePattern } from '../../parse/pattern/compile.js'
import { resolvePattern } from '../../parse/patterns.js'
import { LocalTimeResolver, systemTimeZone } from '../../parse/time/zone.js'
import { SpillQueue } from '../../pipeline/spill.js'
import { emptyCounters, type Emit, type Log, type Source, type SourceCounters } from '../../pipeline/types.js'
import { Throttled } from '../../throttled.js'
import { SyslogFramer } from './frame.js'
import { parseSyslog, type SyslogMessage } from './header.js'
import { UdpKernelDrops } from './udp-drops.js'
import { validateConfig } from '../../config/validate.js'

const listen = z.object({
  host: z.string().default('127.0.0.1').describe('Address to listen on (:: for all IPv6 and IPv4)'),
  port: z.number().int().min(0).max(65535).describe('Port (0: any free port, for tests)')
}).strict()

export const syslogSourceConfigSchema = z.object({
  type: z.literal('syslog').describe('Receive syslog messages (Kea output: syslog, rsyslog or syslog-ng forwarding) over UDP, TCP or TLS'),
  name: z.string().regex(/^[A-Za-z0-9_.-]+$/).describe('Source name'),
  udp: listen.optional().describe('Receive RFC 3164/5424 datagrams'),
  tcp: listen.optional().describe('Receive over TCP, octet-counted or LF-framed (RFC 6587)'),
  tls: listen.extend({
    certFile: z.string().describe('Server certificate (PEM)'),
    keyFile: z.string().describe('Server key (PEM)'),
    caFile: z.string().optional().describe('CA (PEM) that client certificates must chain to; set to require client certificates')
  }).strict().optional().describe('Receive over TLS (RFC 5425)'),
  pattern: z.string().default('kea-syslog').describe('Pattern of the message body: Kea\'s syslog default "%-5p [%c.%t] %m\\n", or the output\'s own'),
  timeZone: z.string().optional().describe('Zone of RFC 3164 timestamps (they carry none); default: this host\'s'),
  maxMessageBytes: z.number().int().min(480).default(64 * 1024).describe('Longer messages are cut, marked and counted'),
  maxConnections: z.number().int().min(1).default(256)
    .describe('TCP/TLS connections at once, both listeners together. At the limit a new connection closes the one that has gone longest without a complete message (not one paused by this source), counted in `evictedConnections` and logged; refused (counted in `rejectedConnections`) only when every connection is paused'),
  maxConnectionsPerPeer: z.number().int().min(1).default(32)
    .describe('TCP/TLS connections at once from one peer network (peerPrefixV4 / peerPrefixV6), so that one host, or one host with many addresses, cannot take every slot (more are refused, logged and counted in `rejectedConnections`)'),
  // /24 and /64: what one host or site can hold without asking anyone (8 loopback or alias
  // addresses × 32 connections took all 256 slots when each address counted alone); a /64 is
  // the smallest IPv6 network a host is given.
  peerPrefixV4: z.number().int().min(0).max(32).default(24)
    .describe('Prefix length of the IPv4 network (also IPv4-mapped IPv6) that counts as one peer for maxConnectionsPerPeer; 32: each address'),
  peerPrefixV6: z.number().int().min(0).max(128).default(64)
    .describe('Prefix length of the IPv6 network that counts as one peer for maxConnectionsPerPeer; 128: each address'),
  firstFrameTimeoutMs: z.number().int().min(100).default(10_000)
    .describe('Close a TCP/TLS connection that has not sent one complete message this long after connecting (for TLS, also the handshake\'s limit): idle or dribbling connections cannot hold slots'),
  idleTimeoutMs: z.number().int().min(1000).default(300_000).describe('Close a TCP/TLS connection silent for this long'),
  batchEvents: z.number().int().min(1).default(500).describe('Events per batch'),
  flushMs: z.number().int().min(1).default(200).describe('A partial batch is handed over after this long'),
  maxPendingBatches: z.number().int().min(1).default(4)
    .describe('Batches waiting for room in the pipeline; at this many TCP/TLS connections are paused and UDP datagrams go to the spill queue'),
  maxBufferedEvents: z.number().int().min(1).default(10_000)
    .describe('Events in memory across all connections: the open batch and batches handed to the pipeline but not yet stored. At the bound TCP/TLS connections are paused (nothing is lost) and UDP datagrams go to the spill queue'),
  maxBufferedBytes: z.number().int().min(64 * 1024).default(16 * 1024 * 1024)
    .describe('Message bytes in memory, counted like maxBufferedEvents (large messages reach this bound first)'),
  udpReceiveBufferBytes: z.number().int().min(4096).optional()
    .describe('SO_RCVBUF of the UDP socket (the kernel caps it at net.core.rmem_max); datagrams the kernel drops when it is full are counted in `dropped`'),
  spillMaxBytes: z.number().int().min(0).default(64 * 1024 * 1024)
    .describe('Size of the on-disk spill queue for UDP datagrams (in the state directory); when it is full or cannot be written (disk full) they are dropped, counted and recorded as a gap. 0 disables it')
}).strict()

export type SyslogSourceConfig = z.input<typeof syslogSourceConfigSchema>

/**
 * Counters of a syslog source: the common ones, connections refused or closed by a limit, and
 * connections closed at maxConnections to admit a new one.
 */
export type SyslogCounters = SourceCounters & { rejectedConnections: number, evictedConnections: number }

/** A TCP/TLS connection holding one of the maxConnections slots (from before the TLS handshake). */
interface Slot {
  raw: Socket
  peer: string
  /** The peer network it counts against (maxConnectionsPerPeer). */
  group: string
  /** When it connected or last completed a message: the longest-idle is closed at the limit. */
  lastMessageAt: number
  conn: Conn | undefined
  released: boolean
}

/**
 * The network an address counts against for maxConnectionsPerPeer: IPv4 (and IPv4-mapped IPv6)
 * cut to `v4` bits, IPv6 to `v6` bits, as "network/bits". Anything else is itself.
 */
export function peerGroup (address: string, v4: number, v6: number): string {
  const addr = address.replace(/%.*$/, '')
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr)?.[1]
  const ipv4 = mapped ?? (isIPv4(addr) ? addr : undefined)
  if (ipv4 !== undefined) {
    const n = ipv4.split('.').reduce((x, o) => x * 256 + Number(o), 0)
    const size = 2 ** (32 - v4)
    const net = Math.floor(n / size) * size
    return `${[24, 16, 8, 0].map((sh) => Math.floor(net / 2 ** sh) % 256).join('.')}/${v4}`
  }
  if (!isIPv6(addr)) return addr
  let text = addr
  // An embedded IPv4 tail (::1.2.3.4) as its two groups.
  const tail4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text)
  if (tail4 !== null) {
    const [a, b, c, d] = tail4.slice(1).map(Number) as [number, number, number, number]
    text = `${text.slice(0, tail4.index)}${(a * 256 + b).toString(16)}:${(c * 256 + d).toString(16)}`
  }
  const [head = '', rest] = text.split('::')
  const h = head === '' ? [] : head.split(':')
  const t = rest === undefined || rest === '' ? [] : rest.split(':')
  const groups = [...h, ...Array<string>(rest === undefined ? 0 : 8 - h.length - t.length).fill('0'), ...t].map((g) => parseInt(g, 16))
  return `${groups.map((g, i) => {
    const bits = Math.min(16, Math.max(0, v6 - 16 * i))
    return (bits === 0 ? 0 : g & ((0xffff << (16 - bits)) & 0xffff)).toString(16)
  }).join(':')}/${v6}`
}

/** One TCP/TLS connection. */
interface Conn {
  socket: Socket
  framer: SyslogFramer
  remote: string
  /** Paused by this source because it is full: its framer holds the rest of a chunk. */
  paused: boolean
  /** The peer finished sending: the framer's last unfinished frame counts. */
  ended: boolean
  firstFrame: NodeJS.Timeout | undefined
  slot: Slot | undefined
}

/** A short reason for an error from listen/bind/readFile. */
function why (err: unknown): string {
  const code = (err as { code?: string }).code
  switch (code) {
    case 'EADDRINUSE': return 'address in use'
    case 'EACCES': return 'permission denied'
    case 'EADDRNOTAVAIL': return 'address not available on this host'
    case 'ENOENT': return 'no such file'
    default: return (err as Error).message
  }
}

/**
 * Receives Kea's logs over syslog: Kea's own `syslog` output through rsyslog/syslog-ng, or any
 * sender. Each message is one Kea record (a multi-line record arrives as one message).
 * TCP and TLS push back (a connection is paused while the pipeline is full); UDP cannot, so
 * what does not fit is spilled to disk, or dropped and counted in `dropped`.
 *
 * Memory is bounded across all connections: events in the open batch plus events handed to the
 * pipeline and not yet stored stay under maxBufferedEvents/maxBufferedBytes (and batches waiting
 * for the pipeline under maxPendingBatches). A connection is framed one message at a time, so
 * when the bound is reached it holds at most the rest of one received chunk.
 */
export class SyslogSource implements Source {
  readonly name: string
  /**
   * Senders are never asked again: at shutdown the pipeline stores its last batches during the
   * drain, and what misses drainMs comes back through Batch.drop to be counted and recorded.
   */
  readonly replayable = false
  readonly counters: SyslogCounters = { ...emptyCounters(), rejectedConnections: 0, evictedConnections: 0 }
  /** The ports actually bound (port 0 in the config picks a free one). */
  readonly bound: { udp?: number, tcp?: number, tls?: number } = {}
  private readonly cfg: ReturnType<typeof syslogSourceConfigSchema.parse>
  private readonly parser: RecordParser
  private readonly resolver: LocalTimeResolver
  private batch: KeaEvent[] = []
  /** Message bytes of the events in `batch`. */
  private batchBytes = 0
  /** Messages in `batch` nobody can read again (all but those from the spill queue), and when the first arrived. */
  private batchLost = 0
  private batchLostFrom = 0
  /** Stopping: hears when room returns (a batch taken by the pipeline, stored or given up). */
  private roomWaiter: (() => void) | undefined
  /** run() has ended: the spill queue closes once no batch handed over is waiting for the store. */
  private spillClosing = false
  /** Batches handed to emit() whose emit has not returned (waiting for room in the pipeline). */
  private pending = 0
  /** Events and message bytes handed to emit() and not yet acknowledged (stored). */
  private heldEvents = 0
  private heldBytes = 0
  private seq = 0
  private emit: Emit | undefined
  private readonly servers: Array<Server | UdpSocket> = []
  private readonly spill: SpillQueue | undefined
  /** Highest spill entry in the batch being filled (released when that batch is acknowledged). */
  private batchSpillSeq = 0
  private readonly conns = new Set<Conn>()
  /** Connections paused while full, in the order they get room again. */
  private readonly paused = new Set<Conn>()
  private roomScheduled = false
  /** Between start and the stop signal: spilled datagrams are moved into batches only then. */
  private reading = false
  /** Open connections (TLS ones from before the handshake) per peer network (peerGroup). */
  private readonly perPeer = new Map<string, number>()
  /** Every admitted connection, TCP and TLS: maxConnections bounds its size. */
  private readonly slots = new Set<Slot>()
  private readonly slotOf = new WeakMap<Socket, Slot>()
  /** Sockets this source closed at a limit: their failed TLS handshake is not an error. */
  private readonly closedAtLimit = new WeakSet<Socket>()
  private kernelDrops: UdpKernelDrops | undefined
  private starting: Promise<void> | undefined
  private readonly limitLog: Throttled
  private readonly evictLog: Throttled
  private readonly spillLog: Throttled
  private readonly gapLog: Throttled

  /** Consecutive drops not yet reported: [first, last, count]. */
  private loss: [number, number, number] | undefined
  private lossTimer: NodeJS.Timeout | undefined
  /** Shutting down: a gap that cannot be recorded is logged, not retried. */
  private stopping = false
  /** After a failed report, no new attempt before this (the timer retries): not one per datagram. */
  private lossRetryAt = 0
  /** A batch was acknowledged (the store wrote) since the drops not yet reported began. */
  private storeWroteSinceLoss = false

  /**
   * `onLoss` hears of every run of dropped datagrams (first and last drop time, count), so
   * lease history can say its answers there are not certain. If it throws or returns a promise
   * that rejects (the store is on the same full disk), the run is reported again later.
   */
  constructor (config: SyslogSourceConfig, stateDir?: string,
    private readonly onLoss?: (from: number, to: number, count: number) => unknown,
    private readonly log?: Log) {
    this.cfg = validateConfig(syslogSourceConfigSchema, config, `sources.${(config as { name?: string }).name ?? '?'}`)
    this.name = this.cfg.name
    const pattern = resolvePattern(this.cfg.pattern)
    // Syslog has no replayable position: ids are unique per receipt (source, start, sequence).
    const sourceId = createHash('sha256').update(`${this.name}\0${Date.now()}\0${process.pid}`).digest('hex').slice(0, 20)
    this.parser = new RecordParser({ pattern, compiled: compilePattern(pattern), sourceId, maxRecordBytes: this.cfg.maxMessageBytes * 2 })
    this.resolver = new LocalTimeResolver(this.cfg.timeZone ?? systemTimeZone())
    this.limitLog = new Throttled((count, f) => this.log?.error(SYSLOG_LOG_CODES.connectionLimit, 'Refused or closed syslog connections at a limit.', { source: this.name, count, ...f }))
    this.evictLog = new Throttled((count, f) => this.log?.error(SYSLOG_LOG_CODES.connectionLimit, 'Closed the longest-idle syslog connections to admit new ones at maxConnections.', { source: this.name, count, ...f }))
    this.spillLog = new Throttled((count, f) => this.log?.error(SYSLOG_LOG_CODES.spill, 'Spill queue failed; datagrams that do not fit in memory are dropped and counted.', { source: this.name, count, ...f }))
    this.gapLog = new Throttled((count, f) => this.log?.error(SYSLOG_LOG_CODES.gap, 'Could not record dropped datagrams as a collection gap yet; trying again.', { source: this.name, count, ...f }))
    if (stateDir !== undefined && this.cfg.udp !== undefined && this.cfg.spillMaxBytes > 0) {
      this.spill = new SpillQueue(join(stateDir, `spill-${this.name}.db`), this.cfg.spillMaxBytes, (op, err) => { this.counters.errors++; this.spillLog.hit({ op, error: err.message }) })
    }
  }

  async run (emit: Emit, signal: AbortSignal): Promise<void> {
    this.emit = emit
    try {
      await this.start()
      const timer = setInterval(() => { this.countKernelDrops(); this.drainSpill(); this.maybeFlush(true); this.resumePaused() }, this.cfg.flushMs)
      this.reading = true
      this.roomReturned()
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }))
      this.reading = false
      clearInterval(timer)
      await this.stop()
      await this.handOverRest()
    } finally {
      // Not before the batches handed over are stored: their spilled datagrams are released then
      // (otherwise they are read again next start and stored twice).
      this.spillClosing = true
      this.closeSpillWhenSettled()
    }
  }

  /**
   * Stopping, nothing more is read: hands over what was received and not yet handed over, for
   * the pipeline to store during its drain or give back with drop() (counted, a gap).
   *
   * - Frames paused connections have read: the kernel acknowledged them to the sender. Handed
   *   over with room as while running, so memory stays bounded.
   * - The open batch. UDP: its datagrams were taken off the socket (those from the spill queue
   *   stay in it until stored, and are read again next start if not); they are handed over like
   *   TCP's, not spilled at shutdown: the drain stores them or counts them. Datagrams still in
   *   the kernel's socket buffer when the socket closes are lost uncounted, as are those sent
   *   while keatrail is not running.
   */
  private async handOverRest (): Promise<void> {
    while (this.paused.size > 0) {
      const room = new Promise<void>((resolve) => { this.roomWaiter = resolve })
      this.resumePaused()
      if (this.paused.size === 0) break
      this.maybeFlush(false)
      await room
    }
    this.roomWaiter = undefined
    // Even beyond maxPendingBatches (the pipeline still bounds its queue). Not awaited: the
    // pipeline settles it, stored or given up, whether or not this source still runs.
    void this.flushBatch(true)
  }

  private closeSpillWhenSettled (): void {
    if (this.spillClosing && this.heldEvents === 0) this.spill?.close()
  }

  /**
   * Binds every configured listener. Idempotent (run() calls it when the pipeline has not).
   * On failure nothing stays open: a half-started source would take datagrams it never hands on.
   */
  async start (): Promise<void> {
    this.starting ??= this.open().catch(async (err: unknown) => {
      await this.stop()
      // Nothing is bound any more: a port here would be a closed one.
      delete this.bound.udp
      delete this.bound.tcp
      delete this.bound.tls
      this.starting = undefined
      throw err
    })
    await this.starting
  }

  private startError (reason: string, cause: unknown): Error {
    return withCause(new SourceStartError(this.name, reason), cause)
  }

  private async open (): Promise<void> {
    const c = this.cfg
    // Read the TLS files before binding anything: a missing certificate is the common mistake.
    let tlsFiles: { cert: Buffer, key: Buffer, ca?: Buffer } | undefined
    if (c.tls !== undefined) {
      const read = (what: string, path: string): Buffer => {
        try { return readFileSync(path) } catch (err) { throw this.startError(`cannot read TLS ${what} ${path}: ${why(err)}`, err) }
      }
      tlsFiles = { cert: read('certificate', c.tls.certFile), key: read('key', c.tls.keyFile), ...(c.tls.caFile === undefined ? {} : { ca: read('CA', c.tls.caFile) }) }
    }
    if (c.udp !== undefined) {
      const udp = c.udp
      // No reuseAddr: with SO_REUSEADDR any local user could bind the same port and receive
      // (most of) the datagrams meant for keatrail.
      const sock = createSocket({ type: udp.host.includes(':') ? 'udp6' : 'udp4' })
      this.servers.push(sock)
      sock.on('message', (msg, rinfo) => this.datagram(msg, rinfo.address))
      try {
        await new Promise<void>((resolve, reject) => { sock.once('error', reject); sock.bind(udp.port, udp.host, () => { sock.off('error', reject); resolve() }) })
      } catch (err) {
        throw this.startError(`cannot listen on udp ${udp.host}:${udp.port}: ${why(err)}`, err)
      }
      // After the bind an error must not become an uncaught exception.
      sock.on('error', () => { this.counters.errors++ })
      if (c.udpReceiveBufferBytes !== undefined) sock.setRecvBufferSize(c.udpReceiveBufferBytes)
      this.bound.udp = sock.address().port
      this.kernelDrops = new UdpKernelDrops(this.bound.udp)
    }
    if (c.tcp !== undefined) this.bound.tcp = await this.listenStream(createServer(), 'tcp', c.tcp.host, c.tcp.port)
    if (c.tls !== undefined && tlsFiles !== undefined) {
      let tls: Server
      try {
        tls = createTlsServer({
          cert: tlsFiles.cert,
          key: tlsFiles.key,
          handshakeTimeout: c.firstFrameTimeoutMs,
          ...(tlsFiles.ca === undefined ? {} : { ca: tlsFiles.ca, requestCert: true, rejectUnauthorized: true })
        })
      } catch (err) {
        throw this.startError(`cannot use the TLS certificate or key: ${(err as Error).message}`, err)
      }
      this.bound.tls = await this.listenStream(tls, 'tls', c.tls.host, c.tls.port, 'secureConnection')
    }
  }

  private datagram (msg: Buffer, remote: string): void {
    const c = this.cfg
    // Full, or older datagrams still spilled (keep their order): to the spill queue.
    if (this.full() || (this.spill !== undefined && this.spill.pendingBytes > 0)) {
      // push() returns false when the queue is full and when it cannot be written (disk full).
      if (this.spill?.push(msg.subarray(0, c.maxMessageBytes), remote, Date.now()) === true) { this.counters.spilled++; this.reportLoss() } else this.dropped()
      return
    }
    this.reportLoss()
    this.receive(msg.subarray(0, c.maxMessageBytes), msg.length > c.maxMessageBytes, remote)
  }

  /** Moves spilled datagrams into batches while there is room. */
  private drainSpill (): void {
    const spill = this.spill
    if (spill === undefined || spill.pendingBytes === 0) return
    while (!this.full() && this.batch.length < this.cfg.batchEvents) {
      const rows = spill.take(Math.min(this.cfg.batchEvents - this.batch.length, this.cfg.maxBufferedEvents))
      if (rows.length === 0) return
      for (const r of rows) {
        // Before receive(): a full batch is flushed inside it and must carry this row's seq.
        this.batchSpillSeq = r.seq
        this.receive(r.data, false, r.remote, r.time, true)
      }
    }
  }

  checkpoint (): void {
    // Nothing to checkpoint: syslog senders cannot be asked to send again. Called at shutdown:
    // a gap that cannot be recorded now is logged instead of retried (a retry timer would keep
    // the process from ever exiting while the store fails).
    this.stopping = true
    this.reportLoss(true)
  }

  private countKernelDrops (): void {
    const n = this.kernelDrops?.delta() ?? 0
    if (n > 0) this.dropped(n)
  }

  private dropped (count = 1): void {
    this.counters.dropped += count
    this.addLoss(Date.now(), Date.now(), count)
  }

  private addLoss (from: number, to: number, count: number): void {
    if (this.loss === undefined) { this.loss = [from, to, count]; this.storeWroteSinceLoss = false } else { this.loss[0] = Math.min(this.loss[0], from); this.loss[1] = Math.max(this.loss[1], to); this.loss[2] += count }
    // Report a long run of drops at least once a second, not only when it ends.
    this.retryLoss(1000)
  }

  private retryLoss (ms: number): void {
    // Unref'd: a gap the closed store can no longer take must not keep a stopped keatrail from
    // exiting (it was counted and logged as KEATRAIL_ERR_SHUTDOWN_DROPPED); while running, the
    // sockets keep the process alive.
    this.lossTimer ??= setTimeout(() => { this.lossTimer = undefined; this.reportLoss() }, ms).unref()
  }

  /**
   * Hands the drops on to `onLoss`. While the store has written nothing since they began (a full
   * disk, an outage) a gap cannot be recorded there either: it waits for the next acknowledged
   * batch (or `force`, at shutdown).
   */
  private reportLoss (force = false): void {
    const l = this.loss
    if (l === undefined || this.onLoss === undefined) return
    if (!force && Date.now() < this.lossRetryAt) { this.retryLoss(this.lossRetryAt - Date.now() + 1); return }
    if (!force && this.heldEvents > 0 && !this.storeWroteSinceLoss) return
    this.loss = undefined
    const failed = (err: unknown): void => {
      if (this.stopping) {
        // Last chance: the drops are counted in `dropped`; this line is their record.
        this.log?.error(SYSLOG_LOG_CODES.gap, 'Could not record dropped datagrams as a collection gap at shutdown; they are counted in dropped.', { source: this.name, from: new Date(l[0]).toISOString(), to: new Date(l[1]).toISOString(), count: l[2], error: (err as Error).message })
        return
      }
      // The gap must not be forgotten: keep it and report it again (merged with later drops).
      this.gapLog.hit({ count: l[2], error: (err as Error).message })
      this.lossRetryAt = Date.now() + 1000
      this.addLoss(l[0], l[1], l[2])
    }
    try {
      const r = this.onLoss(l[0], l[1], l[2])
      if (r instanceof Promise) r.catch(failed)
    } catch (err) {
      failed(err)
    }
  }

  /** No room for more events in memory: stop reading TCP/TLS, send UDP to the spill queue. */
  private full (): boolean {
    const c = this.cfg
    return this.pending >= c.maxPendingBatches ||
      this.batch.length + this.heldEvents >= c.maxBufferedEvents ||
      this.batchBytes + this.heldBytes >= c.maxBufferedBytes
  }

  private async listenStream (server: Server, kind: 'tcp' | 'tls', host: string, port: number, event = 'connection'): Promise<number> {
    // No server.maxConnections: Node would refuse the new connection at the limit, and idle ones
    // (one message, then silence for idleTimeoutMs) would keep the slots. admit() bounds them.
    // First, before the TLS handshake: a peer over its share of slots is refused at once.
    server.prependListener('connection', (raw: Socket) => this.admit(raw))
    server.on(event, (socket: Socket) => this.accept(socket))
    // A listener here means Node no longer closes the socket itself (a handshake timeout would
    // leave it open, holding its slot). A socket admit() closed fails its handshake: counted
    // there, not as an error (the TLS socket's _parent is the connection admit() saw).
    server.on('tlsClientError', (_err: Error, tlsSocket: Socket) => {
      const raw = (tlsSocket as Socket & { _parent?: Socket })._parent
      if (raw === undefined || !this.closedAtLimit.has(raw)) this.counters.errors++
      tlsSocket.destroy()
    })
    server.on('error', () => { this.counters.errors++ })
    try {
      // exclusive: not shared with cluster workers; Node never sets SO_REUSEPORT on it.
      await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen({ port, host, exclusive: true }, () => { server.off('error', reject); resolve() }) })
    } catch (err) {
      throw this.startError(`cannot listen on ${kind} ${host}:${port}: ${why(err)}`, err)
    }
    this.servers.push(server)
    return (server.address() as { port: number }).port
  }

  private limitHit (limit: string, peer: string | undefined, fields: Record<string, unknown> = {}): void {
    this.counters.rejectedConnections++
    this.limitLog.hit({ limit, peer, ...fields })
  }

  /**
   * Counts a new connection against its peer network's share (refused when over) and against
   * maxConnections: at that limit the connection gone longest without a complete message is
   * closed to make room (as nginx and HAProxy reclaim idle keep-alive slots), so silent
   * connections cannot lock a real sender out for idleTimeoutMs. Refused only when every
   * connection is paused by this source (their bytes wait for the pipeline: not idle).
   */
  private admit (raw: Socket): void {
    const c = this.cfg
    const peer = raw.remoteAddress ?? 'unknown'
    const group = peerGroup(peer, c.peerPrefixV4, c.peerPrefixV6)
    const n = this.perPeer.get(group) ?? 0
    if (n >= c.maxConnectionsPerPeer) {
      this.closeAtLimit(raw)
      this.limitHit('maxConnectionsPerPeer', peer, { peers: group })
      return
    }
    if (this.slots.size >= c.maxConnections) {
      let idlest: Slot | undefined
      for (const s of this.slots) {
        if (s.conn?.paused !== true && (idlest === undefined || s.lastMessageAt < idlest.lastMessageAt)) idlest = s
      }
      if (idlest === undefined) {
        this.closeAtLimit(raw)
        this.limitHit('maxConnections', peer)
        return
      }
      this.counters.evictedConnections++
      this.evictLog.hit({ limit: 'maxConnections', peer: idlest.peer, idleMs: Date.now() - idlest.lastMessageAt, for: peer })
      this.release(idlest)
      this.closeAtLimit(idlest.raw)
      idlest.conn?.socket.destroy()
    }
    const slot: Slot = { raw, peer, group, lastMessageAt: Date.now(), conn: undefined, released: false }
    this.slots.add(slot)
    this.slotOf.set(raw, slot)
    this.perPeer.set(group, n + 1)
    raw.once('close', () => this.release(slot))
  }

  private release (slot: Slot): void {
    if (slot.released) return
    slot.released = true
    this.slots.delete(slot)
    const left = (this.perPeer.get(slot.group) ?? 1) - 1
    if (left <= 0) this.perPeer.delete(slot.group)
    else this.perPeer.set(slot.group, left)
  }

  /** Still handed to the other listeners (TLS, accept()): they see it destroyed. */
  private closeAtLimit (raw: Socket): void {
    this.closedAtLimit.add(raw)
    raw.on('error', () => {})
    raw.destroy()
  }

  private accept (socket: Socket): void {
    if (socket.destroyed) return
    const remote = socket.remoteAddress ?? 'unknown'
    const slot = this.slotOf.get(socket) ?? this.slotOf.get((socket as Socket & { _parent?: Socket })._parent as Socket)
    const conn: Conn = { socket, framer: new SyslogFramer(this.cfg.maxMessageBytes), remote, paused: false, ended: false, firstFrame: undefined, slot }
    if (slot !== undefined) slot.conn = conn
    this.conns.add(conn)
    // Absolute, not an inactivity timeout: a peer dribbling a byte now and then resets the latter.
    const firstFrame = (): void => {
      // Its bytes wait here because this source is full: not the peer's fault.
      if (conn.paused) { conn.firstFrame = setTimeout(firstFrame, this.cfg.firstFrameTimeoutMs); return }
      this.limitHit('firstFrameTimeoutMs', remote)
      socket.destroy()
    }
    conn.firstFrame = setTimeout(firstFrame, this.cfg.firstFrameTimeoutMs)
    socket.setTimeout(this.cfg.idleTimeoutMs, () => {
      // Silent because this source paused it: it is not idle.
      if (!conn.paused) socket.destroy()
    })
    socket.on('data', (chunk: Buffer) => {
      conn.framer.feed(chunk)
      if (!conn.paused) this.pump(conn)
    })
    socket.on('end', () => {
      conn.ended = true
      if (!conn.paused) this.pump(conn)
    })
    socket.on('error', () => { this.counters.errors++ })
    socket.on('close', () => {
      clearTimeout(conn.firstFrame)
      this.conns.delete(conn)
      // A paused connection keeps its received bytes in `paused` until they are read.
    })
  }

  /** Hands out the connection's frames while there is room; pauses it when there is none. */
  private pump (conn: Conn): void {
    while (!this.full()) {
      const f = conn.framer.next() ?? (conn.ended ? conn.framer.last() : undefined)
      if (f === undefined) {
        if (conn.paused) {
          conn.paused = false
          this.paused.delete(conn)
          if (!conn.socket.destroyed) conn.socket.resume()
        }
        return
      }
      if (conn.firstFrame !== undefined) { clearTimeout(conn.firstFrame); conn.firstFrame = undefined }
      if (conn.slot !== undefined) conn.slot.lastMessageAt = Date.now()
      this.receive(f.frame, f.truncated, conn.remote)
    }
    // Push back: stop reading this connection until there is room (roomReturned).
    if (conn.paused) {
      // To the back of the line: the others get room first next time.
      this.paused.delete(conn)
      this.paused.add(conn)
    } else {
      conn.paused = true
      this.paused.add(conn)
      conn.socket.pause()
    }
  }

  private resumePaused (): void {
    for (const conn of [...this.paused]) {
      if (this.full()) return
      this.pump(conn)
    }
  }

  /** A batch was taken by the pipeline or stored: hand over, then read paused connections (soon, not inside the pipeline's call). */
  private roomReturned (): void {
    this.roomWaiter?.()
    if (this.roomScheduled) return
    this.roomScheduled = true
    setImmediate(() => {
      this.roomScheduled = false
      this.reportLoss()
      // Spilled datagrams as fast as the pipeline takes them, not one set of batches per flushMs
      // tick (10k/s at the defaults, while the store takes ~20k/s): while anything is spilled
      // every live datagram is spilled too, so a slow drain filled the queue and dropped.
      if (this.reading) this.drainSpill()
      this.maybeFlush(false)
      this.resumePaused()
    })
  }

  /** Hands the batch over when it is complete, when memory is full (so room can return), or on the timer. */
  private maybeFlush (timer: boolean): void {
    if (this.batch.length === 0) return
    if (timer || this.batch.length >= this.cfg.batchEvents || this.full()) void this.flushBatch()
  }

  private receive (raw: Buffer, truncated: boolean, remote: string, receivedAt = Date.now(), fromSpill = false): void {
    this.counters.received += raw.length
    if (!fromSpill) {
      if (this.batchLost === 0) this.batchLostFrom = receivedAt
      this.batchLost++
    }
    const decoded = raw.toString('utf8')
    // Trailing LFs cut by a loop: /\n+$/ tried every run of them to its end, a 65 KB datagram of
    // LFs and one letter held the process 3.7 s.
    let end = decoded.length
    while (end > 0 && decoded.charCodeAt(end - 1) === 10) end--
    const text = end === decoded.length ? decoded : decoded.slice(0, end)
    const msg = parseSyslog(text, Date.now(), (wall) => this.resolver.resolve(wall))
    const body = msg?.body ?? text
    const seq = this.seq++
    // Not valid UTF-8: the record keeps its bytes, as the file source keeps them (kea.parse.raw_base64).
    const rawBody = decoded.includes('\uFFFD') && !Buffer.from(decoded, 'utf8').equals(raw) ? bodyBytes(raw, text, msg) : undefined
    const onEvent = (e: KeaEvent): void => {
      if (msg !== undefined) {
        e.log.syslog = {
          facility: { code: msg.facility },
          severity: { code: msg.severity },
          ...(msg.app === undefined ? {} : { appname: msg.app }),
          ...(msg.host === undefined ? {} : { hostname: msg.host }),
          ...(msg.procId === undefined ? {} : { procid: msg.procId }),
          ...(msg.msgId === undefined ? {} : { msgid: msg.msgId }),
          ...(msg.structuredData === undefined || msg.structuredData === '-' ? {} : { structured_data: msg.structuredData })
        }
      }
      if (truncated) e.kea.parse.truncated = true
      this.batch.push(e)
    }
    // One message is one record, its lines one input line: Kea's appender sends a record in one
    // syslog() call, and every event of a message has the message's id (a second event of it was
    // a duplicate the store dropped). A record whose header reads is the same as its lines joined
    // (the pattern's %m runs over newlines); one that does not is one unmatched event holding
    // every line — not one event per line (a 64 KB datagram of "a\n" made 32,000).
    const input: InputLine = { text: body, offset: seq, bytes: Buffer.byteLength(body), time: msg?.time ?? receivedAt, host: msg?.host ?? remote }
    // Only a body that is not valid UTF-8 itself (the header's bytes may be what was not).
    if (rawBody !== undefined && !Buffer.from(body, 'utf8').equals(rawBody)) { input.raw = Buffer.from(rawBody); input.bytes = rawBody.length }
    this.parser.push(input, onEvent)
    this.parser.flush(onEvent)
    this.batchBytes += raw.length
    this.maybeFlush(false)
  }

  /** `last`: the open batch at shutdown, handed over even with maxPendingBatches waiting. */
  private async flushBatch (last = false): Promise<void> {
    // While this many wait for the pipeline the batch stays open (and full() keeps it bounded).
    if (this.batch.length === 0 || this.emit === undefined || (!last && this.pending >= this.cfg.maxPendingBatches)) return
    const events = this.batch
    const bytes = this.batchBytes
    const spillSeq = this.batchSpillSeq
    const lost = this.batchLost
    const lostFrom = this.batchLostFrom
    this.batch = []
    this.batchBytes = 0
    this.batchSpillSeq = 0
    this.batchLost = 0
    this.pending++
    this.heldEvents += events.length
    this.heldBytes += bytes
    let settled = false
    const settle = (): boolean => {
      if (settled) return false
      settled = true
      this.heldEvents -= events.length
      this.heldBytes -= bytes
      return true
    }
    const ack = (): void => {
      if (!settle()) return
      this.storeWroteSinceLoss = true
      if (spillSeq > 0) this.spill?.release(spillSeq)
      this.closeSpillWhenSettled()
      this.roomReturned()
    }
    // Shutdown drain over before the store had it. Its datagrams from the spill queue stay there
    // (read again next start); the other messages are lost: counted, and a collection gap.
    const drop = (): void => {
      if (!settle()) return
      if (lost > 0) {
        this.counters.dropped += lost
        this.addLoss(lostFrom, Date.now(), lost)
      }
      this.closeSpillWhenSettled()
      this.roomReturned()
    }
    try {
      await this.emit({ source: this.name, events, ack, drop })
    } finally {
      this.pending--
      this.roomReturned()
    }
  }

  private async stop (): Promise<void> {
    this.countKernelDrops()
    for (const c of this.conns) { clearTimeout(c.firstFrame); c.socket.destroy() }
    const servers = this.servers.splice(0)
    await Promise.all(servers.map(async (s) => await new Promise<void>((resolve) => {
      if ('listen' in s) s.close(() => resolve()) // a server not listening calls back with an error: closed all the same
      else {
        try { s.close(() => resolve()) } catch { resolve() } // a UDP socket whose bind failed may be closed already
      }
    })))
    for (const t of [this.limitLog, this.evictLog, this.spillLog, this.gapLog]) t.stop()
  }
}

/**
 * The body's bytes of a message that is not valid UTF-8 (undefined if they cannot be matched to
 * its text). The header is ASCII-delimited: when its decoded text holds no
 * replacement character its UTF-8 length is its byte length; otherwise it is parsed again over
 * latin1 (one character per byte).
 */
function bodyBytes (raw: Buffer, text: string, msg: SyslogMessage | undefined): Buffer | undefined {
  let end = raw.length
  while (end > 0 && raw[end - 1] === 0x0a) end--
  let start = 0
  if (msg !== undefined) {
    const bom = msg.format === 'rfc5424' && text.endsWith(`\uFEFF${msg.body}`) ? 1 : 0
    const header = text.slice(0, text.length - msg.body.length - bom)
    if (!header.includes('\uFFFD')) start = Buffer.byteLength(header, 'utf8') + bom * 3
    else {
      const latin = raw.toString('latin1', 0, end)
      const m = parseSyslog(latin, Date.now(), (w) => w)
      if (m === undefined) return undefined
      start = end - m.body.length
      if (m.format === 'rfc5424' && raw[start] === 0xef && raw[start + 1] === 0xbb && raw[start + 2] === 0xbf) start += 3
    }
  }
  // The bytes must read as the body did (else the header was cut elsewhere: keep none).
  const body = raw.subarray(start, end)
  return body.toString('utf8') === (msg?.body ?? text) ? body : undefined
}
