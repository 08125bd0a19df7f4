export function render() { document.body.textContent = 'Dead Neurons'; }
