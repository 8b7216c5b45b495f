// How many threads the native pool gets by default: this machine's cores as this process may
// use them (affinity, SMT siblings, a cgroup CPU quota). Apart from the kernel adapter: it reads
// the machine, not the model.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/**
 * One thread per physical core this process may use (load() reads GEMMA3_THREADS): decoding streams
 * the weights from memory, which a core's second hardware thread does not speed up (llama.cpp
 * makes the same choice), and each extra thread is one more to be descheduled. Fewer when a CPU
 * quota (cgroup) grants less time: threads beyond it are all stopped until the next period. On
 * a machine busy with other programs any thread may be descheduled at any moment; the pool goes
 * on without a late worker (native/pool.c), so every core is still worth using: a busy core's
 * worker does less of each product and the caller more.
 */
export function defaultThreads(): number {
  const cpus = Math.min(physicalCores() ?? availableParallelism(), cpuQuota() ?? Infinity);
  return Math.max(1, Math.min(64, cpus));
}

/** Distinct physical cores among the CPUs this process may run on (Linux), or null. */
function physicalCores(): number | null {
  try {
    const allowed = /^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    if (!allowed) return null;
    const cores = new Set<string>();
    for (const range of allowed.split(',')) {
      const [first, last = first] = range.split('-').map(Number) as [number, number?];
      for (let cpu = first; cpu <= last; cpu++) {
        const topology = `/sys/devices/system/cpu/cpu${cpu}/topology`;
        cores.add(`${readFileSync(`${topology}/physical_package_id`, 'utf8').trim()}/${readFileSync(`${topology}/core_id`, 'utf8').trim()}`);
      }
    }
    return cores.size > 0 ? cores.size : null;
  } catch {
    return null;
  }
}

/**
 * CPUs' worth of time this process's cgroup may use (cgroup v2 cpu.max, v1 CFS quota), rounded
 * up; null when unlimited or unknown. Inside a container the group is usually mounted as the root.
 */
function cpuQuota(): number | null {
  const read = (path: string): string | null => {
    try {
      return readFileSync(path, 'utf8').trim();
    } catch {
      return null;
    }
  };
  const groups = read('/proc/self/cgroup') ?? '';
  const v2 = /^0::(\S*)$/m.exec(groups)?.[1];
  const v1 = /^\d+:[^:]*\bcpu\b[^:]*:(\S*)$/m.exec(groups)?.[1];
  let quota = NaN, period = NaN;
  const max = v2 === undefined ? null : read(`/sys/fs/cgroup${v2}/cpu.max`) ?? read('/sys/fs/cgroup/cpu.max');
  if (max !== null) {
    [quota = NaN, period = NaN] = max.split(/\s+/).map(Number); // "max 100000": no quota (NaN)
  } else if (v1 !== undefined) {
    const dir = read(`/sys/fs/cgroup/cpu${v1}/cpu.cfs_quota_us`) !== null ? `/sys/fs/cgroup/cpu${v1}` : '/sys/fs/cgroup/cpu';
    quota = Number(read(`${dir}/cpu.cfs_quota_us`) ?? NaN); // -1: no quota
    period = Number(read(`${dir}/cpu.cfs_period_us`) ?? NaN);
  }
  return quota > 0 && period > 0 ? Math.max(1, Math.ceil(quota / period)) : null;
}
