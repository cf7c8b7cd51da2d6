import { ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// LOOPWATCH_BINARY lets a developer run the tests against a debug build while iterating.
const RELEASE_BINARY = process.env.LOOPWATCH_BINARY ?? path.resolve(__dirname, '../../target/release/loopwatch');
export const SCREENSHOTS = path.resolve(__dirname, '../test-results/screenshots');

/** A Ralph-style project whose loop is "alive": its pid file names this test process. */
export function makeProject(root: string, name: string, plan: string): string {
  const dir = path.join(root, name);
  fs.mkdirSync(path.join(dir, '.ralph'), { recursive: true });
  fs.writeFileSync(path.join(dir, '.ralph', 'ralph.pid'), String(process.pid));
  fs.writeFileSync(path.join(dir, 'IMPLEMENTATION_PLAN.md'), plan);
  return dir;
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * The release binary copied alone into an empty directory and run from there, so every test
 * proves that the one file serves the whole site.
 */
export class Server {
  private child?: ChildProcess;
  url = '';
  /** The sign-in link printed on first start (it carries the login credential). */
  loginUrl = '';

  private constructor(
    private readonly binary: string,
    private readonly projectsRoot: string,
    readonly dataDir: string,
    private port: number,
  ) {}

  static async start(projectsRoot: string): Promise<Server> {
    if (!fs.existsSync(RELEASE_BINARY)) {
      throw new Error(`${RELEASE_BINARY} is missing: run cargo leptos build --release --precompress`);
    }
    const dir = tempDir('loopwatch-bin-');
    const binary = path.join(dir, 'loopwatch');
    fs.copyFileSync(RELEASE_BINARY, binary);
    fs.chmodSync(binary, 0o755);
    const server = new Server(binary, projectsRoot, tempDir('loopwatch-data-'), 0);
    await server.launch();
    return server;
  }

  /** Starts (again) on the same port. */
  async launch(): Promise<void> {
    const child = spawn(
      this.binary,
      [
        'serve',
        '--projects',
        this.projectsRoot,
        '--addr',
        `127.0.0.1:${this.port}`,
        '--data-dir',
        this.dataDir,
      ],
      { cwd: path.dirname(this.binary), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child = child;
    let stderr = '';
    child.stderr?.on('data', (chunk) => (stderr += chunk.toString()));
    this.url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not start in 20 s:\n${stderr}`)), 20_000);
      let stdout = '';
      child.stdout?.on('data', (chunk) => {
        stdout += chunk.toString();
        const link = stdout.match(/sign in[^:]*: (http:\/\/\S+)/);
        if (link) this.loginUrl = link[1];
        const match = stdout.match(/listening on (http:\/\/[\d.]+:(\d+))/);
        // The link follows the address on a first start; later starts print no link.
        if (match && (this.loginUrl || this.port !== 0)) {
          clearTimeout(timer);
          this.port = Number(match[2]);
          resolve(match[1]);
        }
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`server exited with ${code}:\n${stderr}`));
      });
    });
  }

  /** Stops the server for good and removes its copy of the binary (hundreds of MB for a debug build). */
  async dispose(): Promise<void> {
    try {
      await this.stop();
    } finally {
      fs.rmSync(path.dirname(this.binary), { recursive: true, force: true });
      fs.rmSync(this.dataDir, { recursive: true, force: true });
    }
  }

  /** SIGTERM, as an operator's service manager would; fails the test if it takes over 10 s. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 10_000));
    if ((await Promise.race([exited, timeout])) === 'timeout') {
      child.kill('SIGKILL');
      throw new Error('server did not exit within 10 s of SIGTERM');
    }
  }
}
