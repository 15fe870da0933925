/** Host scripts are bundled as text (esbuild `loader: { '.sh': 'text' }`, jest test/support/text-transform.js). */
declare module '*.sh' {
  const text: string;
  export default text;
}
