"""Tooltips of the form's fields, by config key path (the loss weights show the formula)."""

LOSS_FORMULA = ("loss = α·CE(s, y) + β·T²·KL(softmax(t/T) ‖ softmax(s/T)) + γ·MSE(r(f_s), f_t)\n"
                "with α = CE weight, β = KD weight, γ = feature weight, T = temperature;\n"
                "s, t = student and teacher logits, f_s, f_t = hint-layer features, "
                "r = a trained regressor.")

VISION_TIP = ("\nWith the vision extra installed (pip install kdstudio[vision]), also every "
              "torchvision:NAME and timm:NAME model: type any part of a name to filter the "
              "list (`kdstudio models` lists them with their sizes and layers).")

TIPS = {
    "name": "A name for the run in the history (empty: one is made from the dataset, "
            "models and method).",
    "seed": "Random seed: model initialisation, data split and batch order. The test split is "
            "fixed whatever the seed, so runs stay comparable.",
    "device": "Where to train. Only devices present on this machine are listed; Auto picks "
              "CUDA, then Apple MPS, then the CPU.",
    "data.dataset": "The dataset. Built-in ones need no files; file datasets need a folder.",
    "data.path": "Folder or file holding the dataset (only for datasets read from files).",
    "data.batch_size": "Examples per training step.",
    "data.val_fraction": "Share of the training data held out for validation (accuracy per "
                         "epoch, teacher-student agreement).",
    "data.test_fraction": "Share carved out as the test set when the dataset has no official "
                          "one (fixed seed, the same for every run).",
    "teacher.source": "Where the teacher comes from: trained here first, loaded from a weight "
                      "file (.safetensors, .pt), or the teacher another run trained.",
    "teacher.checkpoint": "Weight file of a trained teacher (.safetensors or a .pt state dict, "
                          "loaded with weights_only=True). The architecture below must match; "
                          "one whose head has other classes is fine-tuned with a new head when "
                          "Epochs > 0. With the architecture 'file only': an ONNX, TorchScript "
                          "or torch.export .pt2 file, used as it is.",
    "teacher.run": "A saved run whose trained teacher is reused; its architecture and "
                   "parameters are copied and its weight file is loaded.",
    "teacher.arch": "Architecture of the teacher (the large model whose outputs are distilled). "
                    "custom: your own Python file (asked before it is imported); file only: "
                    "the checkpoint is an ONNX, TorchScript or .pt2 file (outputs only, "
                    "frozen, logit methods)." + VISION_TIP,
    "teacher.epochs": "Epochs to train the teacher on the labels before distilling "
                      "(ignored when the teacher is loaded).",
    "teacher.lr": "Learning rate of the teacher's training; 0 means the same as the "
                  "optimiser's learning rate.",
    "student.arch": "Architecture of the student (the small model being trained)." + VISION_TIP,
    "distill.method": "How the teacher teaches. Hover over a method in the list for its loss.",
    "distill.temperature": "T, which softens both distributions: p = softmax(logits / T). The KD "
                           "term is T²·KL(p_t ‖ p_s); the T² keeps its gradients the same size "
                           "whatever T (Hinton 2015). Must be > 0.\n\n" + LOSS_FORMULA,
    "distill.ce_weight": "α, the weight of the label loss CE(s, y).\n\n" + LOSS_FORMULA,
    "distill.kd_weight": "β, the weight of the distillation term T²·KL(p_t ‖ p_s).\n\n"
                         + LOSS_FORMULA,
    "distill.feature_weight": "γ, the weight of the hint loss MSE(r(f_s), f_t) between a student "
                              "layer (through a trained regressor r) and a teacher layer "
                              "(FitNets).\n\n" + LOSS_FORMULA,
    "distill.student_layer": "Student layer f_s whose output is regressed onto the teacher's "
                             "hint layer (listed from the student built for this dataset).",
    "distill.teacher_layer": "Teacher layer f_t that guides the student (listed from the "
                             "teacher built for this dataset).",
    "distill.baseline": "Also train the same student on the labels alone, from the same "
                        "initial weights and batch order, to measure the KD gain.",
    "optim.name": "Optimiser: SGD (with Nesterov or plain momentum), Adam or AdamW.",
    "optim.lr": "Learning rate at the start of each phase.",
    "optim.momentum": "Momentum of SGD, in [0, 1).",
    "optim.nesterov": "SGD with Nesterov momentum (ticked) or plain momentum, as RepDistiller "
                      "and most CIFAR papers use.",
    "optim.weight_decay": "L2 penalty (decoupled in AdamW).",
    "optim.schedule": "Learning-rate schedule over a phase: constant, cosine (to 0), step "
                      "(multiply by gamma every step-size epochs) or multistep (multiply by "
                      "gamma at each milestone epoch).",
    "optim.milestones": "Epochs at which the multistep schedule multiplies the learning rate by "
                        "gamma, e.g. 150, 180, 210 (the CIFAR recipe of the papers).",
    "optim.step_size": "Epochs between decays of the step schedule; 0 means a third of the "
                       "epochs.",
    "optim.gamma": "Factor of each decay of the step schedule, in (0, 1].",
    "optim.epochs": "Epochs of the student (the distilled one and the baseline alike).",
    "data.label_fraction": "Share of the training examples whose labels the student may use "
                           "(class-balanced subset); the teacher still sees every label.",
    "data.label_count": "Exactly this many labelled examples for the student (class-balanced); "
                        "0 uses the share above.",
    "data.transfer": "The examples the KD terms are computed on: the labelled ones, all "
                     "training inputs (their labels unused), or the inputs of another "
                     "dataset with the same input shape.",
    "data.transfer_dataset": "Dataset whose inputs (not labels) carry the teacher's knowledge.",
    "data.transfer_path": "Folder of the transfer dataset's files.",
    "data.loader": "How batches are read. memory: the whole dataset decoded once into memory "
                   "(fastest). stream: read and decoded while training by a PyTorch DataLoader "
                   "(any size). auto: memory when the decoded data fits the memory budget and "
                   "no augmentation is asked.",
    "data.workers": "Worker processes that decode batches for the stream loader; 0 decodes "
                    "them in the training process.",
    "data.augment": "Augmentation of the training images: none, or crop-flip (random crop with "
                    "4-pixel padding and a horizontal flip, the CIFAR recipe). It turns off "
                    "the teacher-output cache (each epoch sees new inputs).",
    "distill.cache_teacher": "Compute the frozen teacher's outputs once and reuse them every "
                             "epoch (same results, faster; skipped when too big).",
    "autocast": "Mixed precision on CUDA (bf16 where supported, else fp16 with a gradient "
                "scaler); no effect on the CPU.",
    "compile": "Run the models through torch.compile: the first step compiles "
               "(seconds), later steps may be faster. Needs a C++ compiler on the CPU.",
    "threads": "CPU threads for training; 0 picks automatically (1 for small models).",
    "keep_checkpoints": "keep_checkpoints: every epoch end saves what a stopped or interrupted "
                        "run needs to be resumed (History > Resume); once the run completes it "
                        "is deleted unless this is ticked",
}

SCHEDULE_TIP = ("How distill.{key} moves during the distillation phase. constant: the value "
                "above throughout. warmup: linear from 'start' up to the value above over "
                "'epochs' epochs. decay: linear from the value above down to 'end' over "
                "'epochs' epochs (0 = the whole phase). The value moves every step.")
