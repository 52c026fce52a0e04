/** What a pull or import is doing at a moment, as `onProgress` receives it. */
export interface PullProgress {
  /**
   * `hashing`: re-reading bytes already on disk (a resumed download, a hard-linked import);
   * `downloading`: receiving bytes; `copying`: copying a local file into the store.
   */
  readonly phase: 'hashing' | 'downloading' | 'copying';
  /** Bytes done in this phase, counting bytes a resumed download already had. */
  readonly received: number;
  /** Bytes the phase will reach, when known. */
  readonly total: number | undefined;
  /** Recent speed, over the last few seconds. */
  readonly bytesPerSecond: number;
  readonly etaSeconds: number | undefined;
}

export type ProgressListener = (progress: PullProgress) => void;

/**
 * Turns a stream of byte counts into throttled progress reports. The speed is measured over a
 * sliding window so that a stall shows at once and a burst does not linger.
 */
export class ProgressMeter {
  readonly #phase: PullProgress['phase'];
  readonly #total: number | undefined;
  readonly #now: () => number;
  readonly #intervalMs: number;
  readonly #windowMs: number;
  readonly #samples: { time: number; received: number }[] = [];
  #received: number;
  #lastReport = Number.NEGATIVE_INFINITY;
  #lastTime: number;

  constructor(options: {
    phase: PullProgress['phase'];
    total: number | undefined;
    /** Bytes already done when the meter starts (a resumed download); they do not count toward speed. */
    start?: number;
    now?: () => number;
    /** At most one report per interval, besides the first and the last. */
    intervalMs?: number;
    windowMs?: number;
  }) {
    this.#phase = options.phase;
    this.#total = options.total;
    this.#received = options.start ?? 0;
    this.#now = options.now ?? Date.now;
    this.#intervalMs = options.intervalMs ?? 200;
    this.#windowMs = options.windowMs ?? 5_000;
    this.#lastTime = this.#now();
    this.#samples.push({ time: this.#lastTime, received: this.#received });
  }

  /** Records `bytes` more; returns a report when one is due. */
  advance(bytes: number): PullProgress | undefined {
    this.#received += bytes;
    const time = this.#now();
    this.#lastTime = time;
    // A sample per twentieth of the window is plenty for a smooth speed, and keeps the list
    // short when gigabytes arrive in 64 KiB chunks.
    if (time - this.#samples[this.#samples.length - 1]!.time >= this.#windowMs / 20) {
      this.#samples.push({ time, received: this.#received });
      while (this.#samples.length > 2 && time - this.#samples[1]!.time >= this.#windowMs)
        this.#samples.shift();
    }
    if (time - this.#lastReport < this.#intervalMs) return undefined;
    this.#lastReport = time;
    return this.snapshot();
  }

  /** The current state, whether or not a report is due (use it for the final report). */
  snapshot(): PullProgress {
    const oldest = this.#samples[0]!;
    const elapsedMs = this.#lastTime - oldest.time;
    const bytesPerSecond = elapsedMs > 0 ? ((this.#received - oldest.received) * 1000) / elapsedMs : 0;
    const remaining = this.#total === undefined ? undefined : Math.max(0, this.#total - this.#received);
    let etaSeconds: number | undefined;
    if (remaining === 0) etaSeconds = 0;
    else if (remaining !== undefined && bytesPerSecond > 0) etaSeconds = remaining / bytesPerSecond;
    return { phase: this.#phase, received: this.#received, total: this.#total, bytesPerSecond, etaSeconds };
  }
}

/**
 * One line for a terminal: label, percent, bar, sizes, speed and ETA. The caller redraws it in
 * place (`\r` and erase-line); the line has no control characters of its own.
 *
 * @example formatProgress(progress) // 'downloading  42% [████████████░░░░░░░░░░░░░░░░░░]  1.23 GB / 2.94 GB  35.4 MB/s  ETA 0:49'
 */
export function formatProgress(progress: PullProgress, options: { barWidth?: number } = {}): string {
  const speed = formatSpeed(progress.bytesPerSecond);
  if (progress.total === undefined || progress.total === 0) {
    return `${progress.phase}  ${formatBytes(progress.received)}  ${speed}`;
  }
  const fraction = Math.min(1, progress.received / progress.total);
  const width = options.barWidth ?? 30;
  const filled = Math.floor(fraction * width);
  const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
  const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
  const sizes = `${formatBytes(progress.received)} / ${formatBytes(progress.total)}`;
  return `${progress.phase} ${percent} [${bar}]  ${sizes}  ${speed}  ETA ${formatDuration(progress.etaSeconds)}`;
}

/**
 * A progress line for logs and pipes, where a redrawn bar would become a pile of lines.
 *
 * @example formatProgressLine(progress) // 'downloading: 42% (1.23 GB of 2.94 GB) at 35.4 MB/s, ETA 0:49'
 */
export function formatProgressLine(progress: PullProgress): string {
  const speed = formatSpeed(progress.bytesPerSecond);
  if (progress.total === undefined || progress.total === 0) {
    return `${progress.phase}: ${formatBytes(progress.received)} at ${speed}`;
  }
  const percent = Math.floor(Math.min(1, progress.received / progress.total) * 100);
  return (
    `${progress.phase}: ${percent}% (${formatBytes(progress.received)} of ${formatBytes(progress.total)})` +
    ` at ${speed}, ETA ${formatDuration(progress.etaSeconds)}`
  );
}

/** Decimal units, as disk and network sizes are quoted: `950 B`, `1.23 GB`, `12.3 MB`, `123 MB`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  if (unit === 0) return `${Math.round(value)} B`;
  // Round first, so that 999.96 MB reads as 1.00 GB rather than 1000 MB.
  const digits = value < 10 ? 2 : value < 100 ? 1 : 0;
  const rounded = Number(value.toFixed(digits));
  if (rounded >= 1000 && unit < units.length - 1) return `${(rounded / 1000).toFixed(2)} ${units[unit + 1]}`;
  return `${rounded.toFixed(digits)} ${units[unit]}`;
}

/** Speed in MB/s with one decimal, the unit download tools use. */
export function formatSpeed(bytesPerSecond: number): string {
  return `${(bytesPerSecond / 1_000_000).toFixed(1)} MB/s`;
}

/** `m:ss` or `h:mm:ss`; `--:--` when unknown. */
export function formatDuration(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '--:--';
  const whole = Math.ceil(seconds);
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  const rest = String(whole % 60).padStart(2, '0');
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, '0')}:${rest}` : `${minutes}:${rest}`;
}
