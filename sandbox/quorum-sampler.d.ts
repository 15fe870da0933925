/** Types of sandbox/quorum-sampler.js (shared by the quorum watch's thread and its worker). */
export interface SampleResult {
  voters: number;
  healthy: number;
  silent: string[];
  leaderless: string[];
  elected: number;
  /** Every member's client URLs, as the list read said. */
  listed: string[];
}
export function sampleQuorum(urls: readonly string[], gateway: <T>(url: string, path: string, body?: string) => Promise<T | null>): Promise<SampleResult>;
export function runWorker(): void;
export const RECHECK_MS: number;
