"""Tooltips of the form's fields, by config key path (the loss weights show their term)."""

import textwrap

TIP_WIDTH = 60  # characters per tooltip line


def wrap_tip(text: str, width: int = TIP_WIDTH) -> str:
    """Plain text broken into lines of at most `width` characters (a word longer than that,
    such as a path, keeps its own line); existing line breaks are kept."""
    lines: list[str] = []
    for line in text.split("\n"):
        lines += textwrap.wrap(line, width, break_long_words=False,
                               break_on_hyphens=False) or [""]
    return "\n".join(lines)


KD_TERM = "β·T²·KL(softmax(t/T) ‖ softmax(s/T))"
LOGITS = "t, s = teacher and student logits; T = the temperature."

_TIPS = {
    "name": "A name for the run in the history. Empty: one is made from the dataset, "
            "models and method.",
    "seed": "Random seed of the initial weights, the data split and the batch order. The "
            "test split stays the same whatever the seed.",
    "device": "Where to train: only this machine's devices are listed. Auto picks CUDA, then "
              "Apple MPS, then the CPU.",
    "data.dataset": "The dataset to learn. Built-in ones need no files; the others read a "
                    "folder or a file.",
    "data.path": "The folder or file that holds the dataset's files.",
    "data.batch_size": "Examples per training step.",
    "data.val_fraction": "Share of the training data held out for validation: accuracy per "
                         "epoch and teacher-student agreement.",
    "data.test_fraction": "Share of the data carved out as the test set, for datasets "
                          "without an official one (the same for every run).",
    "teacher.source": "Where the teacher comes from: trained here first, a weight file, or "
                      "the teacher another run trained.",
    "teacher.checkpoint": "Weight file of a trained teacher (.safetensors or a .pt state "
                          "dict); the architecture below must match. With 'file only': an "
                          "ONNX, TorchScript or .pt2 file, used as it is.",
    "teacher.run": "A saved run whose trained teacher is reused, with its architecture and "
                   "parameters.",
    "teacher.arch": "The teacher: the large model whose outputs are distilled. 'custom' is "
                    "your own Python file; torchvision:NAME and timm:NAME need the vision "
                    "extra.",
    "teacher.epochs": "Epochs of training the teacher on the labels before distilling.",
    "teacher.lr": "Learning rate of the teacher's training; 0 uses the optimiser's.",
    "student.arch": "The student: the small model being trained. torchvision:NAME and "
                    "timm:NAME need the vision extra.",
    "distill.method": "How the teacher teaches the student. Hover over a method in the list "
                      "for its loss.",
    "distill.temperature": "T softens both distributions, p = softmax(logits / T); must be "
                           "> 0.\nThe T² in the KD term " + KD_TERM + " keeps its gradients "
                           "the same size whatever T (Hinton 2015).",
    "distill.ce_weight": "α, the weight of the label loss:\nα·CE(s, y)\n"
                         "s = student logits, y = the labels.",
    "distill.kd_weight": "β, the weight of the KD term:\n" + KD_TERM + "\n" + LOGITS,
    "distill.feature_weight": "γ, the weight of the hint loss (FitNets):\nγ·MSE(r(f_s), f_t)"
                              "\nf_s, f_t = student and teacher hint-layer features; r = a "
                              "trained regressor.",
    "distill.student_layer": "Student layer f_s whose output is regressed onto the "
                             "teacher's hint layer.",
    "distill.teacher_layer": "Teacher layer f_t whose output guides the student's hint "
                             "layer.",
    "distill.baseline": "Also train the same student on the labels alone, from the same "
                        "weights and batches, to measure the KD gain.",
    "optim.name": "The optimiser: SGD (with momentum), Adam or AdamW.",
    "optim.lr": "Learning rate at the start of each phase.",
    "optim.momentum": "Momentum of SGD, in [0, 1).",
    "optim.nesterov": "Ticked: Nesterov momentum; unticked: plain momentum (as most CIFAR "
                      "papers use).",
    "optim.weight_decay": "L2 penalty on the weights (decoupled in AdamW).",
    "optim.schedule": "How the learning rate moves over a phase: constant, cosine (to 0), "
                      "step or multistep (times gamma at set epochs).",
    "optim.milestones": "Epochs at which multistep multiplies the learning rate by gamma, "
                        "e.g. 150, 180, 210.",
    "optim.step_size": "Epochs between the step schedule's decays; 0 means a third of the "
                       "epochs.",
    "optim.gamma": "Factor of each learning-rate decay, in (0, 1].",
    "optim.epochs": "Epochs of the student (the distilled one and the baseline alike).",
    "data.label_fraction": "Share of the training examples whose labels the student may use "
                           "(class-balanced); the teacher sees every label.",
    "data.label_count": "Exactly this many labelled examples for the student "
                        "(class-balanced); 0 uses the share above.",
    "data.transfer": "The examples the KD terms are computed on: the labelled ones, all "
                     "training inputs, or another dataset's inputs.",
    "data.transfer_dataset": "Dataset whose inputs (not labels) carry the teacher's "
                             "knowledge; same input shape.",
    "data.transfer_path": "Folder or file of the transfer dataset.",
    "data.loader": "How batches are read: decoded once into memory (fastest) or streamed "
                   "from the files; auto picks memory when it fits.",
    "data.workers": "Processes that decode batches for the stream loader; 0 decodes them in "
                    "the training process.",
    "data.augment": "Random crop (4-pixel padding) and horizontal flip of training images. "
                    "It turns off the teacher-output cache.",
    "distill.cache_teacher": "Compute the frozen teacher's outputs once and reuse them each "
                             "epoch: same results, faster.",
    "autocast": "Mixed precision on CUDA (bf16, else fp16 with a gradient scaler); no "
                "effect on the CPU.",
    "compile": "Run the models through torch.compile: the first step compiles "
               "(seconds), later steps may be faster. Needs a C++ compiler on the CPU.",
    "threads": "CPU threads for training; 0 picks automatically.",
    "keep_checkpoints": "Keep the checkpoint that lets a run be resumed (History ▸ Resume) "
                        "after it completes; it is deleted otherwise.",
}
TIPS = {key: wrap_tip(text) for key, text in _TIPS.items()}

SCHEDULE_TIP = ("How distill.{key} moves over the distillation phase, every step. warmup: "
                "linear from 'start' up to the value above; decay: linear down to 'end'.")
