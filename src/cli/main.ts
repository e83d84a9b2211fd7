// The `selfsup` command line: a commander program whose subcommands live in their own files.
// Adding a subcommand is one line in SUBCOMMANDS: its name and the import of its register function.
import { Command } from 'commander';
import { pathToFileURL } from 'node:url';
import { engineSummary } from './doctor.js';

type Register = (program: Command) => void;

const SUBCOMMANDS: ReadonlyArray<readonly [string, () => Promise<Register>]> = [
  ['show-augs', async () => (await import('./show-augs.js')).registerShowAugs],
  ['pretrain', async () => (await import('./pretrain.js')).registerPretrain],
  ['knn', async () => (await import('./knn.js')).registerKnn],
  ['reconstruct', async () => (await import('./reconstruct.js')).registerReconstruct],
  ['embed', async () => (await import('./embed.js')).registerEmbed],
  ['linear', async () => (await import('./linear.js')).registerLinear],
  ['finetune', async () => (await import('./finetune.js')).registerFinetune],
  ['export', async () => (await import('./export.js')).registerExport],
  ['doctor', async () => (await import('./doctor.js')).registerDoctor],
  ['retrieve', async () => (await import('./retrieve.js')).registerRetrieve],
  ['dashboard', async () => (await import('./dashboard.js')).registerDashboard],
];

export async function buildProgram(): Promise<Command> {
  const program = new Command('selfsup')
    .description('self-supervised visual representation learning (MoCo, SimSiam, MAE)')
    .showHelpAfterError()
    // the version line also says which engine runs (backend, ISA, layout, threads); computed only when asked
    .option('-V, --version', 'print the version and the engine in use')
    .on('option:version', () => {
      process.stdout.write(`${engineSummary()}\n`);
      process.exit(0);
    })
    .configureOutput({ outputError: (s, write) => write(s) });
  for (const [name, load] of SUBCOMMANDS) {
    let register: Register;
    try {
      register = await load();
    } catch (e) {
      // one broken subcommand (e.g. mid-development) must not take the others down
      process.stderr.write(`[selfsup] subcommand '${name}' is unavailable: ${e instanceof Error ? e.message : String(e)}\n`);
      continue;
    }
    register(program);
  }
  return program;
}

export async function main(argv: readonly string[] = process.argv): Promise<void> {
  const program = await buildProgram();
  try {
    await program.parseAsync([...argv]);
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  }
}

// run when executed directly (bin/selfsup.js or `node --import tsx src/cli/main.ts`), not when imported by tests
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
