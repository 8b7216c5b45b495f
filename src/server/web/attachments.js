// Images waiting to be sent: picked with the file picker, dropped on the page or pasted. Each is
// { name, dataUrl }; the thumbnails above the composer can be removed one by one.

export class Attachments {
  /** @param {{ box: HTMLElement, picker: HTMLInputElement, button: HTMLElement, overlay: HTMLElement, accepts: () => boolean, refuse: (why: string) => void }} els */
  constructor(els) {
    this.els = els;
    this.pending = [];
    els.button.addEventListener('click', () => els.picker.click());
    els.picker.addEventListener('change', async () => {
      await this.add(els.picker.files);
      els.picker.value = '';
    });
    document.addEventListener('paste', (e) => {
      const files = [...(e.clipboardData?.items ?? [])].filter((it) => it.kind === 'file').map((it) => it.getAsFile()).filter(Boolean);
      if (files.length) {
        e.preventDefault();
        void this.add(files);
      }
    });
    let dragDepth = 0;
    document.addEventListener('dragenter', (e) => {
      if (![...(e.dataTransfer?.types ?? [])].includes('Files')) return;
      dragDepth++;
      els.overlay.hidden = false;
    });
    document.addEventListener('dragleave', () => {
      dragDepth = Math.max(0, dragDepth - 1);
      if (dragDepth === 0) els.overlay.hidden = true;
    });
    document.addEventListener('dragover', (e) => e.preventDefault());
    document.addEventListener('drop', (e) => {
      e.preventDefault();
      dragDepth = 0;
      els.overlay.hidden = true;
      if (e.dataTransfer?.files?.length) void this.add(e.dataTransfer.files);
    });
  }

  async add(files) {
    const images = [...files].filter((f) => f.type.startsWith('image/'));
    if (images.length === 0) return;
    if (!this.els.accepts()) {
      this.els.refuse('This model does not accept images.');
      return;
    }
    for (const file of images) this.pending.push({ name: file.name || 'pasted image', dataUrl: await readAsDataUrl(file) });
    this.render();
  }

  /** Takes the pending images (data: URLs) out, for a message being sent. */
  take() {
    const urls = this.pending.map((p) => p.dataUrl);
    this.set([]);
    return urls;
  }

  /** Puts images back (a send that failed gives its draft back). */
  set(urls) {
    this.pending = urls.map((dataUrl, i) => ({ name: `image ${i + 1}`, dataUrl }));
    this.render();
  }

  render() {
    this.els.box.replaceChildren(...this.pending.map((img, i) => {
      const box = document.createElement('div');
      box.className = 'thumb';
      const pic = document.createElement('img');
      pic.src = img.dataUrl;
      pic.alt = img.name;
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.textContent = '×';
      remove.title = `Remove ${img.name}`;
      remove.setAttribute('aria-label', `Remove ${img.name}`);
      remove.addEventListener('click', () => {
        this.pending.splice(i, 1);
        this.render();
      });
      box.append(pic, remove);
      return box;
    }));
  }
}

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}
