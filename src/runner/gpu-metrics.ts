import { execFile } from 'node:child_process';

/** One GPU as nvidia-smi reports it. Memory in MiB, power in watts, temperature in °C. */
export interface GpuReading {
  readonly index: number;
  readonly name: string;
  readonly memoryUsedMiB: number;
  readonly memoryTotalMiB: number;
  /** Percent, 0–100; undefined where the driver says "[N/A]". */
  readonly utilizationPercent: number | undefined;
  readonly powerDrawWatts: number | undefined;
  readonly temperatureCelsius: number | undefined;
}

/** The query the runner's /metrics uses; the parser below reads exactly these columns. */
export const nvidiaSmiArguments = [
  '--query-gpu=name,memory.used,memory.total,utilization.gpu,power.draw,temperature.gpu',
  '--format=csv',
] as const;

/**
 * Parses `nvidia-smi --query-gpu=name,memory.used,memory.total,utilization.gpu,power.draw,
 * temperature.gpu --format=csv`: a header line, then one line a GPU such as
 * `NVIDIA H100 80GB HBM3, 0 MiB, 81559 MiB, 0 %, 113.27 W, 32`. Units are stripped; "[N/A]" and
 * "[Not Supported]" become undefined. GPU names never contain commas in nvidia-smi's output.
 */
export function parseNvidiaSmiCsv(text: string): GpuReading[] {
  const lines = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '');
  if (lines.length === 0) return [];
  const body = lines[0]!.toLowerCase().startsWith('name') ? lines.slice(1) : lines;
  return body.map((line, index) => {
    const fields = line.split(',').map((field) => field.trim());
    if (fields.length !== 6) {
      throw new Error(`nvidia-smi line ${index + 1} has ${fields.length} fields, expected 6: "${line}"`);
    }
    const [name, used, total, utilization, power, temperature] = fields as [
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    return {
      index,
      name,
      memoryUsedMiB: number(used) ?? 0,
      memoryTotalMiB: number(total) ?? 0,
      utilizationPercent: number(utilization),
      powerDrawWatts: number(power),
      temperatureCelsius: number(temperature),
    };
  });
}

function number(field: string): number | undefined {
  const match = /^-?\d+(?:\.\d+)?/.exec(field);
  return match ? Number(match[0]) : undefined;
}

/**
 * Reads the GPUs now, or [] where there is no NVIDIA driver (no nvidia-smi, or it fails). Bounded
 * by a timeout, since a wedged driver can make nvidia-smi hang.
 */
export function readNvidiaGpus(timeoutMs = 2_000): Promise<GpuReading[]> {
  return new Promise((resolve) => {
    execFile('nvidia-smi', [...nvidiaSmiArguments], { timeout: timeoutMs }, (error, stdout) => {
      if (error) {
        resolve([]);
        return;
      }
      try {
        resolve(parseNvidiaSmiCsv(stdout));
      } catch {
        resolve([]);
      }
    });
  });
}

/** Prometheus text lines for the GPUs, in the gauge names the runner's /metrics exports. */
export function gpuMetricsText(gpus: readonly GpuReading[]): string {
  if (gpus.length === 0) return '';
  const gauge = (name: string, help: string, value: (gpu: GpuReading) => number | undefined) => {
    const samples = gpus
      .map((gpu) => [gpu, value(gpu)] as const)
      .filter((entry): entry is readonly [GpuReading, number] => entry[1] !== undefined)
      .map(
        ([gpu, sample]) => `${name}{gpu="${gpu.index}",name="${gpu.name.replace(/["\\]/g, '_')}"} ${sample}`,
      );
    return samples.length ? `# HELP ${name} ${help}\n# TYPE ${name} gauge\n${samples.join('\n')}\n` : '';
  };
  return [
    gauge('switchyard_gpu_memory_used_bytes', 'GPU memory in use.', (gpu) => gpu.memoryUsedMiB * 1024 * 1024),
    gauge(
      'switchyard_gpu_memory_total_bytes',
      'GPU memory in all.',
      (gpu) => gpu.memoryTotalMiB * 1024 * 1024,
    ),
    gauge('switchyard_gpu_utilization_ratio', 'GPU busy fraction, 0 to 1.', (gpu) =>
      gpu.utilizationPercent === undefined ? undefined : gpu.utilizationPercent / 100,
    ),
    gauge('switchyard_gpu_power_watts', 'GPU power draw.', (gpu) => gpu.powerDrawWatts),
    gauge('switchyard_gpu_temperature_celsius', 'GPU temperature.', (gpu) => gpu.temperatureCelsius),
  ].join('');
}
