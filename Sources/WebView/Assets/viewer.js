// The 360° viewer (docs/web.md#viewer): an equirectangular panorama on the inside of a sphere,
// looked at from its centre. Drag to turn (yaw and pitch), the wheel changes the field of view.
// The state is mirrored into data attributes so that tests can read where the camera looks.
(function () {
  "use strict";
  function start(container) {
    var canvas = container.querySelector("canvas");
    var renderer = new THREE.WebGLRenderer({ canvas: canvas, antialias: true, preserveDrawingBuffer: true });
    var scene = new THREE.Scene();
    var camera = new THREE.PerspectiveCamera(75, 2, 0.1, 100);
    var geometry = new THREE.SphereBufferGeometry(10, 64, 32);
    geometry.scale(-1, 1, 1); // seen from inside, the image must not be mirrored
    var state = { yaw: 0, pitch: 0, fov: 75 };
    var fovLabel = container.querySelector(".fov");

    function resize() {
      var width = container.clientWidth, height = Math.round(width / 2);
      renderer.setSize(width, height, false);
      camera.aspect = width / height;
      camera.updateProjectionMatrix();
    }
    function render() {
      state.pitch = Math.max(-85, Math.min(85, state.pitch));
      var phi = THREE.Math.degToRad(90 - state.pitch), theta = THREE.Math.degToRad(state.yaw);
      camera.fov = state.fov;
      camera.updateProjectionMatrix();
      camera.lookAt(new THREE.Vector3(Math.sin(phi) * Math.cos(theta), Math.cos(phi), Math.sin(phi) * Math.sin(theta)));
      renderer.render(scene, camera);
      container.dataset.yaw = state.yaw.toFixed(2);
      container.dataset.pitch = state.pitch.toFixed(2);
      container.dataset.fov = state.fov.toFixed(1);
      if (fovLabel) fovLabel.textContent = Math.round(state.fov);
    }

    new THREE.TextureLoader().load(container.dataset.panorama, function (texture) {
      texture.minFilter = THREE.LinearFilter;
      scene.add(new THREE.Mesh(geometry, new THREE.MeshBasicMaterial({ map: texture })));
      resize();
      render();
      container.dataset.ready = "1";
    }, undefined, function () {
      container.dataset.ready = "error";
      container.querySelector(".hint").textContent = "The panorama could not be loaded.";
    });

    var drag = null;
    canvas.addEventListener("pointerdown", function (event) {
      drag = { x: event.clientX, y: event.clientY, yaw: state.yaw, pitch: state.pitch };
      canvas.setPointerCapture(event.pointerId);
    });
    canvas.addEventListener("pointermove", function (event) {
      if (!drag) return;
      // Degrees per pixel follow the field of view, so a drag moves the image with the pointer.
      var perPixel = state.fov / canvas.clientHeight;
      state.yaw = drag.yaw - (event.clientX - drag.x) * perPixel;
      state.pitch = drag.pitch + (event.clientY - drag.y) * perPixel;
      render();
    });
    canvas.addEventListener("pointerup", function () { drag = null; });
    canvas.addEventListener("wheel", function (event) {
      event.preventDefault();
      state.fov = Math.max(30, Math.min(110, state.fov + event.deltaY * 0.05));
      render();
    }, { passive: false });
    window.addEventListener("resize", function () { resize(); render(); });
  }
  document.querySelectorAll(".viewer").forEach(start);
})();
