// The light/dark choice of the monitor (and of pages that borrow its style,
// such as the scimu demo): a <select> of auto/light/dark, kept in
// localStorage under `key`; auto follows the system. Sets
// <html data-theme="light|dark">, which style.css reads.
export function themeSelector(select, key, onChange = () => {}) {
  const system = matchMedia('(prefers-color-scheme: dark)');
  const apply = () => {
    const choice = localStorage.getItem(key) || 'auto';
    select.value = choice;
    const dark = choice === 'dark' || (choice === 'auto' && system.matches);
    document.documentElement.dataset.theme = dark ? 'dark' : 'light';
    onChange();
  };
  select.addEventListener('change', () => {
    localStorage.setItem(key, select.value);
    apply();
  });
  system.addEventListener('change', apply);
  apply();
}
