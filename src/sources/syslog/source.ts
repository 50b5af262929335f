import { createHash } from 'node:crypto'
import { createSocket, type Socket as UdpSocket } from 'node:dgram'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createServer, type Server, type Socket } from 'node:net'
import { createServer as createTlsServer } from 'node:tls'
import { z } from 'zod'
import type { KeaEvent } from '../../parse/event.js'
import { RecordParser } from '../../parse/parser.js'
import { compilePattern } from '../../parse/pattern/compile.js'
import { resolvePattern } from '../../parse/patterns.js'
import { LocalTimeResolver, systemTimeZone } from '../../parse/time/zone.js'
import { SpillQueue } from '../../pipeline/spill.js'
import { emptyCounters, type Emit, type Source, type SourceCounters } from '../../pipeline/types.js'
import { SyslogFramer } from './frame.js'
import { parseSyslog } from './header.js'
import { UdpKernelDrops } from './udp-drops.js'
import { validateConfig } from '../../config/validate.js'

const listen = z.object({
  host: z.string().default('127.0.0.1').describe('Address to listen on (:: for all IPv6 and IPv4)'),
  port: z.number().int().min(0).max(65535).describe('Port (0: any free port, for tests)')
}).strict()

export const syslogSourceConfigSchema = z.object({
  type: z.literal('syslog'),
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
  maxConnections: z.number().int().min(1).default(256).describe('TCP/TLS connections at once'),
  idleTimeoutMs: z.number().int().min(1000).default(300_000).describe('Close a TCP/TLS connection silent for this long'),
  batchEvents: z.number().int().min(1).default(500).describe('Events per batch'),
  flushMs: z.number().int().min(1).default(200).describe('A partial batch is handed over after this long'),
  maxPendingBatches: z.number().int().min(1).default(4)
    .describe('UDP cannot push back: while this many batches wait for the pipeline, datagrams go to the spill queue'),
  udpReceiveBufferBytes: z.number().int().min(4096).optional()
    .describe('SO_RCVBUF of the UDP socket (the kernel caps it at net.core.rmem_max); datagrams the kernel drops when it is full are counted in `dropped`'),
  spillMaxBytes: z.number().int().min(0).default(64 * 1024 * 1024)
    .describe('Size of the on-disk spill queue for UDP datagrams (in the state directory); when it is full they are dropped and counted. 0 disables it')
}).strict()

export type SyslogSourceConfig = z.input<typeof syslogSourceConfigSchema>

/**
 * Receives Kea's logs over syslog: Kea's own `syslog` output through rsyslog/syslog-ng, or any
 * sender. Each message is one Kea record (a multi-line record arrives as one message).
 * TCP and TLS push back (a connection is paused while the pipeline is full); UDP cannot, so
 * what does not fit is dropped and counted in `dropped`.
 */
export class SyslogSource implements Source {
  readonly name: string
  readonly counters: SourceCounters = emptyCounters()
  /** The ports actually bound (port 0 in the config picks a free one). */
  readonly bound: { udp?: number, tcp?: number, tls?: number } = {}
  private readonly cfg: ReturnType<typeof syslogSourceConfigSchema.parse>
  private readonly parser: RecordParser
  private readonly resolver: LocalTimeResolver
  private batch: KeaEvent[] = []
  private pending = 0
  private seq = 0
  private emit: Emit | undefined
  private readonly servers: Array<Server | UdpSocket> = []
  private readonly spill: SpillQueue | undefined
  /** Highest spill entry in the batch being filled (released when that batch is acknowledged). */
  private batchSpillSeq = 0
  private readonly sockets = new Set<Socket>()
  private kernelDrops: UdpKernelDrops | undefined

  /** Consecutive drops not yet reported: [first, last, count]. */
  private loss: [number, number, number] | undefined
  private lossTimer: NodeJS.Timeout | undefined

  /**
   * `onLoss` hears of every run of dropped datagrams (first and last drop time, count), so
   * lease history can say its answers there are not certain.
   */
  constructor (config: SyslogSourceConfig, stateDir?: string, private readonly onLoss?: (from: number, to: number, count: number) => void) {
    this.cfg = validateConfig(syslogSourceConfigSchema, config, `sources.${(config as { name?: string }).name ?? '?'}`)
    this.name = this.cfg.name
    const pattern = resolvePattern(this.cfg.pattern)
    // Syslog has no replayable position: ids are unique per receipt (source, start, sequence).
    const sourceId = createHash('sha256').update(`${this.name}\0${Date.now()}\0${process.pid}`).digest('hex').slice(0, 20)
    this.parser = new RecordParser({ pattern, compiled: compilePattern(pattern), sourceId, maxRecordBytes: this.cfg.maxMessageBytes * 2 })
    this.resolver = new LocalTimeResolver(this.cfg.timeZone ?? systemTimeZone())
    if (stateDir !== undefined && this.cfg.udp !== undefined && this.cfg.spillMaxBytes > 0) {
      this.spill = new SpillQueue(join(stateDir, `spill-${this.name}.db`), this.cfg.spillMaxBytes)
    }
  }

  async run (emit: Emit, signal: AbortSignal): Promise<void> {
    this.emit = emit
    await this.start()
    const timer = setInterval(() => { this.countKernelDrops(); this.drainSpill(); void this.flushBatch() }, this.cfg.flushMs)
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }))
    clearInterval(timer)
    await this.stop()
    await this.flushBatch()
    this.spill?.close()
  }

  /** Moves spilled datagrams into batches while the pipeline has room. */
  private drainSpill (): void {
    const spill = this.spill
    if (spill === undefined || spill.pendingBytes === 0) return
    while (this.pending < this.cfg.maxPendingBatches && this.batch.length < this.cfg.batchEvents) {
      const rows = spill.take(this.cfg.batchEvents - this.batch.length)
      if (rows.length === 0) return
      for (const r of rows) {
        // Before receive(): a full batch is flushed inside it and must carry this row's seq.
        this.batchSpillSeq = r.seq
        this.receive(r.data, false, r.remote, r.time)
      }
    }
  }

  checkpoint (): void {
    // Nothing to checkpoint: syslog senders cannot be asked to send again.
    this.reportLoss()
  }

  private countKernelDrops (): void {
    const n = this.kernelDrops?.delta() ?? 0
    if (n > 0) this.dropped(n)
  }

  private dropped (count = 1): void {
    this.counters.dropped += count
    const now = Date.now()
    if (this.loss === undefined) this.loss = [now, now, count]
    else { this.loss[1] = now; this.loss[2] += count }
    // Report a long run of drops at least once a second, not only when it ends.
    this.lossTimer ??= setTimeout(() => { this.lossTimer = undefined; this.reportLoss() }, 1000)
  }

  private reportLoss (): void {
    const l = this.loss
    if (l === undefined) return
    this.loss = undefined
    this.onLoss?.(l[0], l[1], l[2])
  }

  private async start (): Promise<void> {
    const c = this.cfg
    if (c.udp !== undefined) {
      const sock = createSocket({ type: c.udp.host.includes(':') ? 'udp6' : 'udp4', reuseAddr: true })
      sock.on('message', (msg, rinfo) => {
        // Full pipeline, or older datagrams still spilled (keep their order): to the spill queue.
        if (this.pending >= c.maxPendingBatches || (this.spill !== undefined && this.spill.pendingBytes > 0)) {
          if (this.spill?.push(msg.subarray(0, c.maxMessageBytes), rinfo.address, Date.now()) === true) { this.counters.spilled++; this.reportLoss() } else this.dropped()
          return
        }
        this.reportLoss()
        this.receive(msg.subarray(0, c.maxMessageBytes), msg.length > c.maxMessageBytes, rinfo.address)
      })
      await new Promise<void>((resolve, reject) => { sock.once('error', reject); sock.bind(c.udp?.port, c.udp?.host, () => resolve()) })
      if (c.udpReceiveBufferBytes !== undefined) sock.setRecvBufferSize(c.udpReceiveBufferBytes)
      this.bound.udp = sock.address().port
      this.kernelDrops = new UdpKernelDrops(this.bound.udp)
      this.servers.push(sock)
    }
    if (c.tcp !== undefined) this.bound.tcp = await this.listenStream(createServer(), c.tcp.host, c.tcp.port)
    if (c.tls !== undefined) {
      const tls = createTlsServer({
        cert: readFileSync(c.tls.certFile),
        key: readFileSync(c.tls.keyFile),
        ...(c.tls.caFile === undefined ? {} : { ca: readFileSync(c.tls.caFile), requestCert: true, rejectUnauthorized: true })
      })
      this.bound.tls = await this.listenStream(tls, c.tls.host, c.tls.port, 'secureConnection')
    }
  }

  private async listenStream (server: Server, host: string, port: number, event = 'connection'): Promise<number> {
    server.maxConnections = this.cfg.maxConnections
    server.on(event, (socket: Socket) => {
      this.sockets.add(socket)
      const framer = new SyslogFramer(this.cfg.maxMessageBytes)
      const remote = socket.remoteAddress ?? 'unknown'
      socket.setTimeout(this.cfg.idleTimeoutMs, () => socket.destroy())
      socket.on('data', (chunk: Buffer) => {
        framer.push(chunk, (frame, truncated) => this.receive(frame, truncated, remote))
        if (this.pending >= this.cfg.maxPendingBatches) {
          // Push back: stop reading this connection until the pipeline took the batches.
          socket.pause()
          void this.flushBatch().then(() => socket.resume())
        }
      })
      socket.on('end', () => framer.end((frame, truncated) => this.receive(frame, truncated, remote)))
      socket.on('error', () => { this.counters.errors++ })
      socket.on('close', () => this.sockets.delete(socket))
    })
    server.on('tlsClientError', () => { this.counters.errors++ })
    await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(port, host, () => resolve()) })
    this.servers.push(server)
    return (server.address() as { port: number }).port
  }

  private receive (raw: Buffer, truncated: boolean, remote: string, receivedAt = Date.now()): void {
    this.counters.received += raw.length
    const text = raw.toString('utf8').replace(/\n+$/, '')
    const msg = parseSyslog(text, Date.now(), (wall) => this.resolver.resolve(wall))
    const body = msg?.body ?? text
    const seq = this.seq++
    const lines = body.split('\n')
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
      this.counters.parsed++
      if (e.kea.parse.status === 'unmatched') this.counters.unmatched++
      else if (e.kea.parse.status === 'partial') this.counters.partial++
      this.batch.push(e)
    }
    for (const line of lines) {
      this.parser.push({ text: line, offset: seq, bytes: Buffer.byteLength(line), time: msg?.time ?? receivedAt, host: msg?.host ?? remote }, onEvent)
    }
    this.parser.flush(onEvent)
    if (this.batch.length >= this.cfg.batchEvents) void this.flushBatch()
  }

  private async flushBatch (): Promise<void> {
    if (this.batch.length === 0 || this.emit === undefined) return
    const events = this.batch
    const spillSeq = this.batchSpillSeq
    this.batch = []
    this.batchSpillSeq = 0
    this.pending++
    try {
      await this.emit({ source: this.name, events, ack: () => { if (spillSeq > 0) this.spill?.release(spillSeq) } })
    } finally {
      this.pending--
    }
  }

  private async stop (): Promise<void> {
    this.countKernelDrops()
    for (const s of this.sockets) s.destroy()
    await Promise.all(this.servers.map(async (s) => await new Promise<void>((resolve) => {
      if ('close' in s && 'listen' in s) (s as Server).close(() => resolve())
      else (s as UdpSocket).close(() => resolve())
    })))
  }
}
