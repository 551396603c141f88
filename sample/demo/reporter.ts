import { MultiBar, Presets, type SingleBar } from 'cli-progress';

/** Numbers shown next to the progress bar. */
export interface ProgressCounts {
  requests: number;
  waited: number;
  built: number;
  audit: number;
}

/**
 * Prints what happens, as it happens, each line stamped with the time since the start;
 * on a terminal, a progress bar stays below the lines.
 */
export class Reporter {
  private readonly startedAt = Date.now();
  private multibar: MultiBar | undefined;
  private bar: SingleBar | undefined;

  constructor(private readonly progress: boolean) {}

  /** Seconds since the demo started, e.g. ` 12.3s`. */
  stamp(at = Date.now()): string {
    return `${((at - this.startedAt) / 1000).toFixed(1).padStart(5)}s`;
  }

  /** A timestamped event line. */
  event(text: string): void {
    this.print(`${this.stamp()}  ${text}`);
  }

  /** A line without a timestamp. */
  plain(text = ''): void {
    this.print(text);
  }

  /** Shows the progress bar (on a terminal) for a phase of `totalSeconds`. */
  startProgress(totalSeconds: number): void {
    if (!this.progress || !process.stdout.isTTY) return;
    this.multibar = new MultiBar(
      {
        format:
          ' {bar} {value}/{total} s | requests {requests} | waited {waited} | built {built} | audit runs {audit}',
        hideCursor: true,
        clearOnComplete: true,
        stopOnComplete: false,
      },
      Presets.shades_classic,
    );
    this.bar = this.multibar.create(totalSeconds, 0, {
      requests: 0,
      waited: 0,
      built: 0,
      audit: 0,
    });
  }

  /** Moves the progress bar. */
  updateProgress(seconds: number, counts: ProgressCounts): void {
    this.bar?.update(Math.floor(seconds), { ...counts });
  }

  /** Removes the progress bar. */
  stopProgress(): void {
    this.multibar?.stop();
    this.multibar = undefined;
    this.bar = undefined;
  }

  private print(line: string): void {
    if (this.multibar) this.multibar.log(`${line}\n`);
    else process.stdout.write(`${line}\n`);
  }
}
