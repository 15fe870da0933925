/** Captures what a Lambda entry prints on stdout (Powertools writes EMF metrics there). */
export function captureStdout(): { lines: string[]; restore: () => void } {
  const lines: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    lines.push(String(chunk));
    return (write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
  });
  return { lines, restore: () => (process.stdout.write = write) };
}
