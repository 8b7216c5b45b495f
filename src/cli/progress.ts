// Download progress for `gemma3 pull` (and --pull): on a terminal one bar per file, redrawn in
// place (bytes, percent, rate, time left); otherwise plain lines (start, done, retries), which
// read well in logs and CI.
import type { PullEvent } from '../advanced.js';

export function formatBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} B`;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (x: number) => String(x).padStart(2, '0');
  return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${pad(m)}:${pad(s % 60)}`;
}

export interface ProgressReporter {
  onEvent(event: PullEvent): void;
}

export function progressReporter(out: NodeJS.WriteStream = process.stderr): ProgressReporter {
  const tty = out.isTTY === true;
  let current: { path: string; started: number; startBytes: number; lastDraw: number; announced: boolean } | null = null;
  const line = (text: string) => out.write(`gemma3: ${text}\n`);
  const bar = (path: string, completed: number, total: number) => {
    const c = current!;
    const elapsed = (Date.now() - c.started) / 1000;
    const rate = elapsed > 0 ? (completed - c.startBytes) / elapsed : 0;
    const eta = rate > 0 ? (total - completed) / rate : Infinity;
    const width = 24;
    const filled = total > 0 ? Math.round((completed / total) * width) : 0;
    const pct = total > 0 ? Math.floor((completed / total) * 100) : 100;
    const name = path.length > 36 ? `…${path.slice(-35)}` : path;
    out.write(`\r\x1b[K${name}  ${'█'.repeat(filled)}${'░'.repeat(width - filled)} ${String(pct).padStart(3)}%  ` +
      `${formatBytes(completed)}/${formatBytes(total)}  ${formatBytes(rate)}/s  ETA ${formatDuration(eta)}`);
  };
  return {
    onEvent(e) {
      switch (e.type) {
        case 'resolved':
          line(`pulling ${e.repo} at ${e.commit.slice(0, 12)} (${e.kind})`);
          return;
        case 'file':
          line(`${e.file.path}: already in the cache (${formatBytes(e.file.size)})`);
          return;
        case 'progress': {
          if (!current || current.path !== e.file.path) {
            current = { path: e.file.path, started: Date.now(), startBytes: e.completed, lastDraw: 0, announced: false };
          }
          if (!tty) {
            if (!current.announced) line(`downloading ${e.file.path} (${formatBytes(e.total)})`);
            current.announced = true;
            return;
          }
          const now = Date.now();
          if (now - current.lastDraw >= 100 || e.completed === e.total) {
            current.lastDraw = now;
            bar(e.file.path, e.completed, e.total);
          }
          return;
        }
        case 'retry':
          if (tty) out.write('\n');
          line(`${e.file.path}: ${e.reason}; resuming at byte ${e.offset}`);
          if (current) current.announced = false;
          return;
        case 'done': {
          const seconds = current && current.path === e.file.path ? (Date.now() - current.started) / 1000 : 0;
          if (tty) out.write('\r\x1b[K');
          line(`${e.file.path}: ${formatBytes(e.file.size)} done${e.resumedFrom ? ` (resumed at ${formatBytes(e.resumedFrom)})` : ''}` +
            `${seconds > 0 ? `, ${formatBytes(e.fetched / seconds)}/s` : ''}, ${e.file.sha256 ? 'sha256' : 'git id'} verified`);
          current = null;
          return;
        }
      }
    },
  };
}
