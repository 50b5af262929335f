import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'
import { LOG_CODES } from '../errors.js'
import type { Log } from './types.js'

/**
 * A small JSON document of read positions, written atomically: temp file, fsync, rename, fsync
 * of the directory (Vector's checkpointer does the same). A reader sees the old or the new
 * version, never a torn one. Positions only ever move after the store acknowledged the events.
 */
export class CheckpointFile<T extends object> {
  readonly path: string
  /** Set when the file existed but could not be read: callers re-read and rely on event ids. */
  corrupt: string | undefined
  /**
   * Set when reading failed for another reason than its content (permissions, not a file…):
   * a fault of the setup, which check() reports instead of re-reading everything.
   */
  unreadable: string | undefined

  /** Creates nothing yet: a state directory that cannot be made is reported by check(), per source. */
  constructor (path: string) {
    this.path = path
  }

  /**
   * Throws, with a reason fit for one line, unless the checkpoint can be kept: its directory
   * exists or can be made, a file can be created in it, and an existing checkpoint was readable.
   */
  check (): void {
    const dir = dirname(this.path)
    const probe = `${this.path}.probe`
    try {
      mkdirSync(dir, { recursive: true })
      closeSync(openSync(probe, 'w', 0o600))
      unlinkSync(probe)
    } catch (err) {
      throw new Error(`state directory ${dir} is not writable: ${(err as Error).message}`)
    }
    if (this.unreadable !== undefined) throw new Error(`checkpoint ${this.path} cannot be read: ${this.unreadable}`)
  }

  load (): T | undefined {
    let text: string
    try {
      text = readFileSync(this.path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      this.corrupt = (err as Error).message
      this.unreadable = (err as Error).message
      return undefined
    }
    try {
      const v = JSON.parse(text) as unknown
      if (v === null || typeof v !== 'object') throw new Error('not an object')
      return v as T
    } catch (err) {
      this.corrupt = (err as Error).message
      return undefined
    }
  }

  private failing = false

  /**
   * Saves, or reports why it could not (once per run of failures) and returns false: a disk
   * that is full must not stop a source. The position is only as old as the last save, and
   * what is read again is recognized by its event ids.
   */
  trySave (value: T, log: Log, source: string): boolean {
    try {
      this.save(value)
      if (this.failing) log.info('Checkpoint written again.', { source, path: this.path })
      this.failing = false
      return true
    } catch (err) {
      if (!this.failing) log.error(LOG_CODES.checkpointWrite, 'Could not write a checkpoint; will try again.', { source, path: this.path, error: err })
      this.failing = true
      return false
    }
  }

  save (value: T): void {
    const tmp = `${this.path}.tmp`
    mkdirSync(dirname(this.path), { recursive: true })
    const fd = openSync(tmp, 'w', 0o600)
    try {
      writeSync(fd, JSON.stringify(value))
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(tmp, this.path)
    const dir = openSync(dirname(this.path), 'r')
    try { fsyncSync(dir) } finally { closeSync(dir) }
  }
}
