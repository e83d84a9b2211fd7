// `selfsup pretrain`: resolve a config (preset, then --config file, then flags and --set key=value), print and
// save it, then train with a progress bar, a JSON-lines log, PNG curves and checkpoints; --resume continues a run.
import type { Command } from 'commander';
import { SingleBar } from 'cli-progress';
import { progressBar } from './progress.js';
import { mergeConfig, parseOverrides, readConfigFile } from '../io/config.js';
import { checkTrainConfig, presetConfig, presetNames, RESUMABLE_KEYS, type PretrainConfig } from '../train/config.js';
import { METHODS, METHOD_NAMES, methodSpec } from '../methods/registry.js';
import { pretrain, readRunConfig, NonFiniteLossError } from '../train/pretrain.js';
import { runDistributed } from '../dist/launch.js';
import { enableProfiler } from '../tensor/profiler.js';
import { setPrecision } from '../backend/native.js';

export interface PretrainFlags {
  method: string;
  preset: string;
  data?: string;
  testData?: string;
  out?: string;
  config?: string;
  epochs?: string;
  batchSize?: string;
  lr?: string;
  workers?: string;
  seed?: string;
  limit?: string;
  set: string[];
  resume?: boolean;
  progress: boolean;
  nproc?: string;
  threads?: string;
  bucketCapMb?: string;
  profile?: boolean;
  precision: string;
}

/** The flags that make the config (the others say how to run it). */
export type ConfigFlags = Omit<PretrainFlags, 'precision' | 'profile' | 'nproc' | 'threads' | 'bucketCapMb' | 'progress'> & { progress?: boolean };

/**
 * The config a command line describes: preset <- file <- named flags <- --set overrides. With --resume the base is
 * the run's saved config instead of the preset, and only the keys a resumed run may change can differ from it
 * (checked by pretrain, which names the others).
 */
export function resolvePretrainConfig(f: ConfigFlags, o: { methodGiven?: boolean } = {}): PretrainConfig {
  let method = methodSpec(f.method, 'pretrain').name;
  let cfg = presetConfig(method, f.preset);
  if (f.resume === true) {
    const out = f.out ?? `runs/${cfg.method}-${cfg.preset}`;
    const saved = readRunConfig(out);
    if (saved === null) throw new Error(`[pretrain] --resume: no run in ${out} (config.json missing)`);
    if (o.methodGiven === true && saved.method !== method) {
      throw new Error(`[pretrain] --resume cannot change 'method' (${JSON.stringify(saved.method)} -> ${JSON.stringify(method)})`);
    }
    method = saved.method;
    cfg = saved;
  }
  if (f.config !== undefined) cfg = mergeConfig(cfg, readConfigFile(f.config, 'pretrain'), 'pretrain');
  const named: string[] = [];
  const num = (flag: string, key: string, v: string | undefined): void => {
    if (v === undefined) return;
    if (!Number.isFinite(Number(v))) throw new Error(`[pretrain] --${flag} must be a number, got '${v}'`);
    named.push(`${key}=${v}`);
  };
  if (f.data !== undefined) named.push(`data=${f.data}`);
  if (f.testData !== undefined) named.push(`testData=${f.testData}`);
  if (f.out !== undefined) named.push(`out=${f.out}`);
  num('epochs', 'epochs', f.epochs);
  num('batch-size', 'batchSize', f.batchSize);
  num('lr', 'optim.lr', f.lr);
  num('workers', 'workers', f.workers);
  num('seed', 'seed', f.seed);
  num('limit', 'limit', f.limit);
  cfg = mergeConfig(cfg, parseOverrides(cfg, named, 'pretrain'), 'pretrain');
  cfg = mergeConfig(cfg, parseOverrides(cfg, f.set, 'pretrain'), 'pretrain');
  if (cfg.method !== method) throw new Error(`[pretrain] the config says method '${cfg.method}' but --method is '${method}'`);
  checkTrainConfig(cfg, 'pretrain');
  return cfg;
}

function pct(v: number): string {
  return `${(100 * v).toFixed(2)}%`;
}

export function registerPretrain(program: Command): void {
  program
    .command('pretrain')
    .description(`self-supervised pretraining: ${METHOD_NAMES.join(', ')}`)
    .option('--method <name>', METHOD_NAMES.map((n) => `${n}: ${METHODS[n].description}`).join('; '), 'moco')
    .option('--preset <name>', 'recipe: quick (Fashion-MNIST, minutes), cifar, and the ImageNet ones (listed below)', 'quick')
    .option('--data <path>', "training images: 'fashion-mnist', an image folder (with train/ and test/ for kNN), CIFAR binaries, or a .tar.gz of those")
    .option('--test-data <path>', 'labelled held-out images for the kNN monitor (default: the test split of --data)')
    .option('--out <dir>', 'run folder (config, log.jsonl, checkpoints, loss.png, knn.png)')
    .option('--config <file>', 'JSON or YAML config; its keys override the preset')
    .option('--epochs <n>', 'epochs')
    .option('--batch-size <n>', 'images per step')
    .option('--lr <x>', 'base learning rate (per 256 images when the preset scales it)')
    .option('--workers <n>', 'data loader threads')
    .option('--seed <n>', 'random seed')
    .option('--limit <n>', 'use only N training images')
    .option('--set <key=value>', 'override any config key, e.g. --set moco.K=4096 (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--resume', `continue the run in --out from its last checkpoint: its saved config is the base; only ${RESUMABLE_KEYS.join(', ')} may change (e.g. --epochs to extend a finished run)`)
    .option('--no-progress', 'no progress bar (log lines only)')
    .option('--profile', 'print a per-kernel time table (forward / backward / optimizer, GFLOP/s) of the third step (also SELFSUP_PROFILE=1)')
    .option('--precision <p>', 'fp32, or bf16: conv and matmul multiply in bf16 with fp32 master weights, like torch.autocast (CPUs with AVX512-BF16 or AMX only)', 'fp32')
    .option('--nproc <n>', 'data parallel on this machine: launch n ranks with mpirun (see docs/distributed.md for several machines)')
    .option('--threads <n>', 'with --nproc: compute threads per rank (default: cores / n)')
    .option('--bucket-cap-mb <mb>', "data parallel: gradient allreduce bucket size, PyTorch's bucket_cap_mb (default: 25, or an eighth of the model's gradients when smaller)")
    .addHelpText('after', `\nPresets: ${METHOD_NAMES.map((n) => `${n}: ${presetNames(n).join(', ')}`).join('; ')}`)
    .action(async (f: PretrainFlags, cmd: Command) => {
      const launch = { nproc: f.nproc !== undefined ? Number(f.nproc) : undefined, threads: f.threads !== undefined ? Number(f.threads) : undefined };
      // under mpirun/srun: join the job (rank 0 prints, logs and checkpoints)
      await runDistributed('pretrain', launch, (dist) => runPretrain(f, dist.rank === 0, cmd.getOptionValueSource('method') === 'cli'));
    });
}

/** --bucket-cap-mb: a positive number of MB, or undefined for DDP's default. */
export function parseBucketCapMb(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const mb = Number(v);
  if (!(mb > 0)) throw new Error(`[pretrain] --bucket-cap-mb must be a positive number of MB, got '${v}'`);
  return mb;
}

/** One rank's run of `selfsup pretrain` (the only one without data parallelism). */
async function runPretrain(f: PretrainFlags, lead: boolean, methodGiven: boolean): Promise<void> {
  const bucketCapMb = parseBucketCapMb(f.bucketCapMb);
  if (f.profile === true) enableProfiler();
  if (f.precision !== 'fp32') {
    if (f.precision !== 'bf16') throw new Error(`[pretrain] --precision must be fp32 or bf16, got '${f.precision}'`);
    setPrecision('bf16');
  }
  let cfg = resolvePretrainConfig(f, { methodGiven });
  if (f.out === undefined && f.resume !== true) cfg = { ...cfg, out: `runs/${cfg.method}-${cfg.preset}` };
  if (lead) process.stdout.write(`[pretrain] config:\n${JSON.stringify(cfg, null, 2)}\n`);
  const tty = lead && f.progress && process.stderr.isTTY === true;
  const passes = progressBar('pretrain', tty);
  const bar = tty ? new SingleBar({
    format: 'epoch {epoch}/{epochs} [{bar}] {value}/{total} | loss {loss} | lr {lr} | {ips} img/s | ETA {eta_formatted}',
    hideCursor: true, etaBuffer: 50,
  }) : null;
  let barEpoch = -1;
  try {
    const res = await pretrain(cfg, {
      resume: f.resume === true,
      bucketCapMb,
      callbacks: {
        log: (s) => { if (bar !== null && barEpoch >= 0) bar.stop(); process.stdout.write(`${s}\n`); barEpoch = -1; },
        onStep: ({ epoch, step, iters, loss, lr, imgPerSec, metrics }) => {
          const payload = { epoch: epoch + 1, epochs: cfg.epochs, loss: loss.toFixed(4), lr: lr.toExponential(2), ips: imgPerSec.toFixed(0) };
          if (bar !== null) {
            if (barEpoch !== epoch) { bar.start(iters, step - 1, payload); barEpoch = epoch; }
            bar.update(step, payload);
          } else if (step % cfg.logEvery === 0 || step === iters) {
            const extra = Object.entries(metrics).map(([k, v]) => ` ${k} ${v.toFixed(4)}`).join('');
            process.stdout.write(`epoch ${epoch + 1}/${cfg.epochs} step ${step}/${iters} loss ${loss.toFixed(4)} lr ${lr.toExponential(2)} ${imgPerSec.toFixed(0)} img/s${extra}\n`);
          }
        },
        // the kNN monitor's passes get their own bar (with ETA) in place of the epoch's
        onProgress: (phase, done, total) => {
          if (bar !== null && barEpoch >= 0) { bar.stop(); barEpoch = -1; }
          passes.update(phase, done, total);
        },
        onEpoch: ({ epoch, loss, knn, seconds }) => {
          if (bar !== null) { bar.stop(); barEpoch = -1; }
          process.stdout.write(`[pretrain] epoch ${epoch}/${cfg.epochs}: loss ${loss.toFixed(4)}${knn ? `, kNN top-1 ${pct(knn.top1)} top-5 ${pct(knn.top5)}` : ''}${knn?.testLoss !== undefined ? `, test reconstruction loss ${knn.testLoss.toFixed(4)}` : ''} (${seconds.toFixed(0)} s)\n`);
        },
      },
    });
    if (bar !== null) bar.stop();
    if (!lead) return;
    // a resumed run says what this process did and how long the whole run trained
    const whole = res.trainSeconds === null ? '' : `the whole run trained ${res.trainSeconds.toFixed(0)} s, kNN passes excluded`;
    const resumed = res.firstEpoch === 0 || whole === '' ? ''
      : res.firstEpoch >= res.epochs ? ` (all done before this process; ${whole})`
        : ` (${res.firstEpoch + 1 === res.epochs ? `epoch ${res.epochs}` : `epochs ${res.firstEpoch + 1}-${res.epochs}`} in this process; ${whole})`;
    process.stdout.write(`[pretrain] done: ${res.epochs} epoch${res.epochs === 1 ? '' : 's'} in ${res.seconds.toFixed(0)} s${resumed}; run folder ${cfg.out}\n`);
    if (res.knnBefore !== null && res.knnAfter !== null) {
      process.stdout.write(`[pretrain] kNN top-1: ${pct(res.knnBefore.top1)} before -> ${pct(res.knnAfter.top1)} after (top-5 ${pct(res.knnBefore.top5)} -> ${pct(res.knnAfter.top5)})\n`);
      const px = res.pixelBaseline;
      if (px !== null) {
        const at = px.size !== undefined ? ` (${px.size} px)` : '';
        process.stdout.write(`[pretrain] kNN top-1 side by side: raw pixels${at} ${pct(px.raw.top1)} | pixels - mean image ${pct(px.centered.top1)} | `
          + `random init ${pct(res.knnBefore.top1)} | learned ${pct(res.knnAfter.top1)}\n`);
      }
      if (res.knnBefore.testLoss !== undefined && res.knnAfter.testLoss !== undefined) {
        process.stdout.write(`[pretrain] test reconstruction loss: ${res.knnBefore.testLoss.toFixed(4)} before -> ${res.knnAfter.testLoss.toFixed(4)} after\n`);
      }
    }
  } catch (e) {
    if (bar !== null) bar.stop();
    if (e instanceof NonFiniteLossError) {
      process.stderr.write(`${e.message}\n`);
      process.exitCode = 3;
      return;
    }
    throw e;
  }
}
