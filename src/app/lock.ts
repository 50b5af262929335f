import { closeSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { DataDirError, DataDirLockedError } from '../errors.js'

/** The file in the data directory that says which process writes there. */
export const LOCK_FILE = 'keatrail.lock'

/** Whether a process with this id exists (EPERM: it does, under another user). */
function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Whether process `pid` started after `ms` (epoch): then it is not the process that wrote a
 * lock at `ms`, only one that got its pid later (pids are reused, at every boot too). Linux:
 * /proc/<pid>/stat's start time (clock ticks since boot, USER_HZ 100) and /proc/stat's btime;
 * elsewhere false (the pid alone decides).
 */
function startedAfter (pid: number, ms: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name (which may hold spaces), from field 3 on; starttime is 22.
    const startTicks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19])
    const btime = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1])
    if (!Number.isFinite(startTicks) || !Number.isFinite(btime)) return false
    // A second of slack: the start time has 10 ms ticks, btime whole seconds.
    return (btime + startTicks / 100) * 1000 > ms + 1000
  } catch {
    return false
  }
}

function mtimeMs (path: string): number {
  try {
    return statSync(path).mtimeMs
  } catch {
    return Number.POSITIVE_INFINITY
  }
}

function ageMs (path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs
  } catch {
    return Number.POSITIVE_INFINITY
  }
}

function holder (path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim())
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

/**
 * Takes the data directory for one writer, as Filebeat and Vector lock their data path: two
 * `keatrail run` on one directory would follow the same files with the same checkpoints and
 * overwrite each other's. The lock is a file created exclusively (O_EXCL) holding the pid; one
 * left by a process that no longer exists (kill -9, power loss), or whose pid now belongs to a
 * process started after the lock was written (a reboot), is taken over. The same process
 * holding it already counts as held: a second service in one process is a second writer too.
 * Returns the release function.
 */
export function lockDataDir (dataDir: string): () => void {
  const path = join(dataDir, LOCK_FILE)
  // Bounded: a stale lock is removed once; losing the race for it then is a real holder.
  for (let attempt = 0; ; attempt++) {
    let fd: number
    try {
      fd = openSync(path, 'wx', 0o600)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new DataDirError(dataDir, (err as Error).message)
      const pid = holder(path)
      // No pid yet may be a writer between creating the file and writing to it: only a file
      // that stayed empty for a while is stale.
      if (attempt === 0 && (pid === undefined ? ageMs(path) > 5000 : !alive(pid) || startedAfter(pid, mtimeMs(path)))) {
        rmSync(path, { force: true })
        continue
      }
      throw new DataDirLockedError(dataDir, pid === undefined ? `lock file ${path}` : `pid ${pid}, lock file ${path}`)
    }
    try {
      writeSync(fd, `${process.pid}\n`)
    } finally {
      closeSync(fd)
    }
    let released = false
    return () => {
      if (released) return
      released = true
      // Only our own: a lock some other process took over after ours was judged stale stays.
      if (holder(path) === process.pid) rmSync(path, { force: true })
    }
  }
}
