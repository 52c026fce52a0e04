import { describe, expect, it } from 'vitest';
import { gpuMetricsText, parseNvidiaSmiCsv, readNvidiaGpus } from './gpu-metrics.js';

// Printed by nvidia-smi on an H100 machine (issue 3), plus a second GPU with fields a driver may
// not support.
const h100 = `name, memory.used [MiB], memory.total [MiB], utilization.gpu [%], power.draw [W], temperature.gpu
NVIDIA H100 80GB HBM3, 0 MiB, 81559 MiB, 0 %, 113.27 W, 32
`;

describe('parseNvidiaSmiCsv', () => {
  it('reads the H100 line nvidia-smi printed', () => {
    expect(parseNvidiaSmiCsv(h100)).toEqual([
      {
        index: 0,
        name: 'NVIDIA H100 80GB HBM3',
        memoryUsedMiB: 0,
        memoryTotalMiB: 81559,
        utilizationPercent: 0,
        powerDrawWatts: 113.27,
        temperatureCelsius: 32,
      },
    ]);
  });

  it('reads several GPUs and turns [N/A] and [Not Supported] into undefined', () => {
    const text = `${h100}NVIDIA A10G, 20480 MiB, 23028 MiB, [N/A], [Not Supported], 61\r\n`;
    const gpus = parseNvidiaSmiCsv(text);
    expect(gpus).toHaveLength(2);
    expect(gpus[1]).toMatchObject({
      index: 1,
      name: 'NVIDIA A10G',
      memoryUsedMiB: 20480,
      temperatureCelsius: 61,
    });
    expect(gpus[1]!.utilizationPercent).toBeUndefined();
    expect(gpus[1]!.powerDrawWatts).toBeUndefined();
  });

  it('reads output without the header line, and nothing from empty output', () => {
    expect(parseNvidiaSmiCsv('NVIDIA L4, 10 MiB, 23034 MiB, 5 %, 30.1 W, 40')[0]!.utilizationPercent).toBe(5);
    expect(parseNvidiaSmiCsv('\n')).toEqual([]);
  });

  it('refuses a line with the wrong number of fields, naming it', () => {
    expect(() => parseNvidiaSmiCsv('name, memory.used\nNVIDIA H100, 0 MiB')).toThrow(
      /line 1 has 2 fields, expected 6/,
    );
  });
});

describe('gpuMetricsText', () => {
  it('renders Prometheus gauges in bytes and ratios, skipping what the driver did not report', () => {
    const text = gpuMetricsText(parseNvidiaSmiCsv(`${h100}NVIDIA A10G, 1 MiB, 2 MiB, [N/A], [N/A], 50\n`));
    expect(text).toContain('# TYPE switchyard_gpu_memory_total_bytes gauge');
    expect(text).toContain(
      'switchyard_gpu_memory_total_bytes{gpu="0",name="NVIDIA H100 80GB HBM3"} 85520809984',
    );
    expect(text).toContain('switchyard_gpu_utilization_ratio{gpu="0",name="NVIDIA H100 80GB HBM3"} 0');
    expect(text).not.toContain('switchyard_gpu_utilization_ratio{gpu="1"');
    expect(text).toContain('switchyard_gpu_temperature_celsius{gpu="1",name="NVIDIA A10G"} 50');
  });

  it('renders nothing without GPUs', () => {
    expect(gpuMetricsText([])).toBe('');
  });
});

describe('readNvidiaGpus', () => {
  it('answers an empty list where there is no NVIDIA driver, and never throws', async () => {
    const gpus = await readNvidiaGpus(1_000);
    expect(Array.isArray(gpus)).toBe(true);
  });
});
