/** Small text formats the CLI's human output shares. */

/** An age in seconds as an operator reads it: minutes below an hour, hours below two days, then days. */
export function age(sec: number): string {
  return sec < 3600 ? `${Math.round(sec / 60)} min` : sec < 172_800 ? `${(sec / 3600).toFixed(1)} h` : `${Math.round(sec / 86_400)} d`;
}
