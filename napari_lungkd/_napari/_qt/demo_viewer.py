"""What ``lungkd demo`` does inside napari: the sample case, the docked widget, the first run.

Kept under ``_napari/`` (the only place that imports napari and Qt); the command module only
parses arguments and calls :func:`run_demo`.
"""

from __future__ import annotations

import sys

WIDGET_NAME = "Lung nodules (KD)"


def weights_problem(model: str) -> str | None:
    """None when weights for ``model`` can be found; else the one-line reason."""
    from napari_lungkd.errors import LungKDError
    from napari_lungkd.models.weights import resolve_weights

    try:
        resolve_weights(model)
    except LungKDError as exc:
        return f"lungkd demo: no segmentation: {exc}"
    return None


def open_demo(
    viewer,
    model: str = "student",
    device: str = "auto",
    segment: bool = True,
    teacher: bool = False,
):
    """Put the sample case into ``viewer``, dock the widget and start the model; returns the widget."""
    from napari.layers import Layer
    from napari.utils.notifications import show_warning

    from napari_lungkd._napari.sample import sample_chest_ct

    for data, kwargs, kind in sample_chest_ct():
        viewer.add_layer(Layer.create(data, kwargs, kind))
    # dock it the way napari's Plugins menu does (through the npe2 manifest)
    _, widget = viewer.window.add_plugin_dock_widget("napari-lungkd", WIDGET_NAME)
    panel = widget.segment_panel
    panel.model_combo.setCurrentText(model)
    if device in [panel.device_combo.itemText(i) for i in range(panel.device_combo.count())]:
        panel.device_combo.setCurrentText(device)
    if not segment:
        return widget, None
    problem = weights_problem(model) or (weights_problem("teacher") if teacher else None)
    if problem:
        print(problem, file=sys.stderr)
        show_warning(problem)
        panel.status.setText(problem)
        return widget, problem
    if teacher and model == "student":
        widget.compare_panel.teacher_check.setChecked(True)  # runs the student, then the teacher
    else:
        widget.segment(model)
    return widget, None


def show_result(widget) -> None:
    """What the demo shows once the models are done: the largest nodule (the table is sorted by
    volume) on the slice where the models' masks show it best; with the teacher's result too,
    student | teacher side by side on it (grid view, framed for one cell) and the Compare tab."""
    from napari_lungkd.inference.nodules import largest_section_z

    table = widget.nodule_table
    if table.rowCount():
        table.jump_to(0)  # centre slice, camera on the nodule
        masks = [seg.mask for seg in widget.session.results.values()]
        z = largest_section_z(table.nodules[0], *masks)
        dims = widget.viewer.dims
        point = list(dims.point)
        point[-3] = float(table.translate[-3]) + z * float(table.scale[-3])
        dims.point = point
    if "teacher" in widget.session.results and "student" in widget.session.results:
        panel = widget.compare_panel
        panel.grid_check.setChecked(True)  # set_grid re-frames the nodule for the grid cell
        widget.tabs.setCurrentWidget(panel)


def close_toasts(viewer) -> int:
    """Close the notification pop-ups (toasts) shown over the canvas; returns how many."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    toasts = viewer.window._qt_window.findChildren(NapariQtNotification)
    for toast in toasts:
        toast.close()
    return len(toasts)


def run_demo(args) -> int:
    import napari
    from qtpy.QtCore import QTimer

    viewer = napari.Viewer(title="napari-lungkd demo")
    viewer.window.resize(1500, 950)
    widget, problem = open_demo(
        viewer, args.model, args.device, segment=not args.no_segment, teacher=args.teacher
    )

    def shoot() -> None:
        close_toasts(viewer)  # a notification would cover the image in the picture
        viewer.screenshot(args.screenshot, canvas_only=False)
        print(f"lungkd demo: screenshot saved to {args.screenshot}")
        if args.quit_after_screenshot:
            viewer.close()

    def when_done() -> None:
        if widget.job is not None and widget.job.is_running:
            QTimer.singleShot(250, when_done)
            return
        if not args.no_segment:
            show_result(widget)
        if args.screenshot:
            # let Qt draw once first: napari 0.9 lays out new grid cells on the first draw, and a
            # grab taken before that shows them zoomed into a few pixels
            QTimer.singleShot(500, shoot)

    QTimer.singleShot(500, when_done)
    napari.run()
    return 0
