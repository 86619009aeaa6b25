/// Every component `backdrop parity` runs, one group per file (a group is a `[name: runner]`
/// table). A new group is one more line here.
let componentGroups: [[String: ParityRunner]] = [
    TextComponents.runners,
    SchedulerComponents.runners,
    PipelineComponents.runners,
    SegmentationComponents.runners,
    ImageComponents.runners,
    MultiViewComponents.runners,
    CLIPComponents.runners,
    InceptionComponents.runners,
]
